#include "core/json_bounds.hpp"

#include <nlohmann/json.hpp>

#include "voxq/errors.hpp"

namespace voxq {

namespace {

// nlohmann's callback parser is not used: it is quadratic in the number of
// objects in an array.
class JsonBounds final : public nlohmann::json_sax<nlohmann::json> {
  public:
    JsonBounds(std::size_t max_values, std::size_t max_depth, std::string_view what,
               std::string_view hint)
        : max_values_(max_values), max_depth_(max_depth), what_(what), hint_(hint) {}
    [[nodiscard]] const std::string& problem() const { return problem_; }

    bool null() override { return count(); }
    bool boolean(bool) override { return count(); }
    bool number_integer(number_integer_t) override { return count(); }
    bool number_unsigned(number_unsigned_t) override { return count(); }
    bool number_float(number_float_t, const string_t&) override { return count(); }
    bool string(string_t&) override { return count(); }
    bool binary(binary_t&) override { return count(); }
    bool start_object(std::size_t) override { return open(); }
    bool key(string_t&) override { return true; }
    bool end_object() override { return close(); }
    bool start_array(std::size_t) override { return open(); }
    bool end_array() override { return close(); }
    bool parse_error(std::size_t, const std::string&,
                     const nlohmann::detail::exception& e) override {
        problem_ = what_ + ": not valid JSON (" + e.what() + ")";
        return false;
    }

  private:
    bool count() {
        if (++values_ <= max_values_) return true;
        problem_ = what_ + ": more than " + std::to_string(max_values_) + " JSON values" + hint_;
        return false;
    }
    bool open() {
        if (++depth_ > max_depth_) {
            problem_ = what_ + ": nested deeper than " + std::to_string(max_depth_) + " levels";
            return false;
        }
        return count();
    }
    bool close() {
        --depth_;
        return true;
    }
    std::size_t max_values_;
    std::size_t max_depth_;
    std::string what_;
    std::string hint_;
    std::size_t values_ = 0;
    std::size_t depth_ = 0;
    std::string problem_;
};

}  // namespace

void check_json_bounds(const std::string& body, std::size_t max_values, std::size_t max_depth,
                       std::string_view what, std::string_view hint) {
    JsonBounds bounds(max_values, max_depth, what, hint);
    if (!nlohmann::json::sax_parse(body, &bounds)) throw ValidationError(bounds.problem());
}

}  // namespace voxq
