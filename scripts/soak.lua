-- wrk script for scripts/soak.sh: alternates assignments of fresh units with outcome events for
-- units this thread assigned 100 requests earlier, so every event resolves to a stored arm.
-- Arguments after `--`: a run tag (unique per wrk run) and the delay in ms between a
-- connection's requests (0 for the maximum-throughput run).

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local counter = 0
local prefix = "s"
local delay_ms = 0
local json = { ["Content-Type"] = "application/json" }

function init(args)
  prefix = (args[1] or "s") .. "-t" .. tid
  delay_ms = tonumber(args[2] or "0")
end

function delay()
  return delay_ms
end

function request()
  counter = counter + 1
  if counter % 2 == 1 or counter < 200 then
    local unit = prefix .. "-u" .. counter
    return wrk.format("POST", "/v1/experiments/soak/assign", json,
      '{"unit_id":"' .. unit .. '","attributes":{"region":"eu"}}')
  end
  local unit = prefix .. "-u" .. (counter - 101)
  local body = string.format(
    '{"event_id":"%s-e%d","experiment":"soak","task_id":"%s","metrics":{"minutes":%.2f,"escalated":%s}}',
    prefix, counter, unit, (counter % 90) + 0.5, tostring(counter % 7 == 0))
  return wrk.format("POST", "/v1/outcomes", json, body)
end
