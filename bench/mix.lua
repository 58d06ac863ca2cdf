-- wafbench request mix: the functions wrk calls. The requests (tables
-- mix, attacks and common) are written above this by wafbench from
-- bench/mix.go, the one description of the mix that the differential
-- shadow test also replays. X-Client-ID spreads the requests over 64
-- sticky clients so wafcanary's 50/50 split sees both arms (the address
-- is 127.0.0.1 for all).

local n = 0
local attack = 0

function init(args)
  -- Threads start at different points so they do not march in step.
  n = math.random(0, #mix - 1)
  attack = math.random(0, #attacks - 1)
  -- An optional think time in ms (wrk ... -- MS) paces each connection:
  -- the moderate-load runs use it.
  local think = tonumber(args[1] or "0") or 0
  if think > 0 then
    delay = function() return think end
  end
end

request = function()
  n = n + 1
  local e = mix[(n % #mix) + 1]
  if e[1] == "ATTACK" then
    attack = attack + 1
    e = attacks[(attack % #attacks) + 1]
  end
  local h = {}
  for k, v in pairs(common) do h[k] = v end
  h["X-Client-ID"] = "client-" .. (n % 64)
  if e[4] then h["Content-Type"] = e[4] end
  return wrk.format(e[1], e[2], h, e[3])
end

-- One machine-readable line for wafbench; wrk's own report is above it.
done = function(summary, latency, requests)
  io.write(string.format(
    'WAFBENCH {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
