-- Shared by the scenario scripts: keeps wrk's threads and, when the run is done, prints one
-- line `BENCH_JSON {...}` that bench/bench.rs reads (requests, duration, latency percentiles,
-- socket and status errors, and the script's own counters summed over wrk's threads).
local M = {}
local threads = {}

function M.setup(thread)
  table.insert(threads, thread)
end

-- `counters`: names of global numbers the scenario script keeps in each thread.
function M.done(summary, latency, counters)
  local e = summary.errors
  local out = {
    string.format(
      '{"requests":%d,"duration_us":%d,"p50_us":%.1f,"p99_us":%.1f,'
        .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout),
  }
  for _, name in ipairs(counters or {}) do
    local total = 0
    for _, t in ipairs(threads) do
      total = total + (t:get(name) or 0)
    end
    table.insert(out, string.format(',"%s":%d', name, total))
  end
  table.insert(out, "}")
  io.write("BENCH_JSON " .. table.concat(out) .. "\n")
end

return M
