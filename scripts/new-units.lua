-- wrk script for POST …/assign with a fresh unit per request (bench-http.sh, bench-floor.sh).
-- setup() runs in the main Lua state and numbers the threads, so ids never repeat across threads.
local n = 0
function setup(thread) n = n + 1; thread:set("tid", n) end
local counter = 0
-- A second wrk on another replica (bench-http.sh's REPLICAS=2) sets BENCH_RUN, for ids of its own.
local prefix = os.getenv("BENCH_RUN") and ("w-" .. os.getenv("BENCH_RUN")) or "w"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  return wrk.format(nil, wrk.path, nil, '{"unit_id":"' .. prefix .. '-' .. tid .. '-' .. counter .. '"}')
end
