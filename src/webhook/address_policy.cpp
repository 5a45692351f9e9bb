#include <arpa/inet.h>

#include <cstring>

#include "voxq/errors.hpp"
#include "voxq/webhook.hpp"

namespace voxq {

namespace {

std::optional<std::vector<std::uint8_t>> parse_ip(const std::string& text) {
    std::uint8_t buf[16];
    if (inet_pton(AF_INET, text.c_str(), buf) == 1) return std::vector<std::uint8_t>(buf, buf + 4);
    if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
        return std::vector<std::uint8_t>(buf, buf + 16);
    }
    return std::nullopt;
}

// Networks a webhook must not reach unless allowed: loopback, private,
// link-local (cloud metadata 169.254.169.254 included), CGNAT, reserved,
// multicast; for IPv6 also unique-local, link-local, NAT64 and AWS metadata.
const std::vector<std::pair<IpNetwork, const char*>>& blocked_networks() {
    static const std::vector<std::pair<IpNetwork, const char*>> nets = [] {
        std::vector<std::pair<IpNetwork, const char*>> out;
        for (const auto& [cidr, why] : std::vector<std::pair<const char*, const char*>>{
                 {"0.0.0.0/8", "a 'this network' address"},
                 {"10.0.0.0/8", "a private address"},
                 {"100.64.0.0/10", "a carrier-grade NAT address"},
                 {"127.0.0.0/8", "a loopback address"},
                 {"169.254.0.0/16", "a link-local or cloud metadata address"},
                 {"172.16.0.0/12", "a private address"},
                 {"192.0.0.0/24", "a reserved address"},
                 {"192.168.0.0/16", "a private address"},
                 {"198.18.0.0/15", "a benchmarking address"},
                 {"224.0.0.0/4", "a multicast address"},
                 {"240.0.0.0/4", "a reserved or broadcast address"},
                 {"::/128", "the unspecified address"},
                 {"::1/128", "a loopback address"},
                 {"fc00::/7", "a unique-local (private) address"},
                 {"fe80::/10", "a link-local address"},
                 {"ff00::/8", "a multicast address"},
                 {"64:ff9b::/96", "a NAT64 address"},
                 {"fd00:ec2::254/128", "a cloud metadata address"},
             }) {
            out.emplace_back(IpNetwork::parse(cidr), why);
        }
        return out;
    }();
    return nets;
}

}  // namespace

IpNetwork IpNetwork::parse(const std::string& text) {
    const std::size_t slash = text.find('/');
    const auto ip = parse_ip(text.substr(0, slash));
    if (!ip) throw ConfigError("'" + text + "' is not an IP network (CIDR like 10.0.0.0/8)");
    IpNetwork net{*ip, static_cast<int>(ip->size() * 8)};
    if (slash != std::string::npos) {
        const std::string bits = text.substr(slash + 1);
        std::size_t used = 0;
        int prefix = -1;
        try {
            prefix = std::stoi(bits, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (bits.empty() || used != bits.size() || prefix < 0 || prefix > net.prefix_length) {
            throw ConfigError("'" + text + "' has an invalid prefix length");
        }
        net.prefix_length = prefix;
    }
    return net;
}

bool IpNetwork::contains(const std::vector<std::uint8_t>& ip) const {
    if (ip.size() != address.size()) return false;
    int bits = prefix_length;
    for (std::size_t i = 0; i < ip.size() && bits > 0; ++i, bits -= 8) {
        const auto mask = static_cast<std::uint8_t>(bits >= 8 ? 0xFF : (0xFF << (8 - bits)));
        if ((ip[i] & mask) != (address[i] & mask)) return false;
    }
    return true;
}

std::string refused_address_reason(const std::vector<std::uint8_t>& ip,
                                   const std::vector<IpNetwork>& allowed) {
    std::vector<std::uint8_t> judged = ip;
    // ::ffff:a.b.c.d is the IPv4 address a.b.c.d.
    static const std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (ip.size() == 16 && std::memcmp(ip.data(), kMapped, 12) == 0) {
        judged.assign(ip.begin() + 12, ip.end());
    }
    for (const IpNetwork& net : allowed) {
        if (net.contains(judged) || net.contains(ip)) return {};
    }
    for (const auto& [net, why] : blocked_networks()) {
        if (net.contains(judged)) return why;
    }
    return {};
}

}  // namespace voxq
