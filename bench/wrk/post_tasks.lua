-- wrk script: POST /v1/tasks with BATCH tasks per request (env VOXQ_BATCH, default 1).
local batch = tonumber(os.getenv("VOXQ_BATCH") or "1")
local inbox = os.getenv("VOXQ_INBOX") or "http://127.0.0.1:9/hook"
local one = '{"items":[{"request":{"text":"Hi.","voice_id":"espeak.en-us"},"response_url":"' .. inbox .. '"}]}'
local body
if batch == 1 then
  body = one
else
  local parts = {}
  for i = 1, batch do parts[i] = one end
  body = '{"tasks":[' .. table.concat(parts, ",") .. ']}'
end
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local failures = 0
function response(status, headers, body)
  if status ~= 201 then failures = failures + 1 end
end

function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"system":"voxq serve","batch":%d,"requests":%d,"seconds":%.3f,"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d}\n',
    batch, summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
