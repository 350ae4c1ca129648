-- Sends the requests listed in $BENCH_REQUESTS, one a line: `METHOD<TAB>path[<TAB>form body]`,
-- in order, starting again at the top when the list runs out (counted in `wraps`, so a
-- "first open" that ran out of fresh links is reported). With BENCH_STATIC=1 the file's first
-- line is the only request: wrk formats it once, so the client costs as little as it can (bare
-- route, limit, re-open).
local common = dofile((os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/common.lua")
setup = common.setup

local file = assert(os.getenv("BENCH_REQUESTS"), "BENCH_REQUESTS: the request list")
local ua = os.getenv("BENCH_UA")
local form = "application/x-www-form-urlencoded"

local function parse(line)
  local method, path, body = line:match("^(%u+)\t([^\t]+)\t?(.*)$")
  assert(method, "bad request line: " .. line)
  if body == "" then
    body = nil
  end
  return method, path, body
end

wraps = 0

if os.getenv("BENCH_STATIC") == "1" then
  local method, path, body = parse(io.lines(file)())
  wrk.method, wrk.path, wrk.body = method, path, body
  wrk.headers["User-Agent"] = ua
  if body then
    wrk.headers["Content-Type"] = form
  end
else
  local lines, n, i = {}, 0, 0
  local formatted = {}
  local headers = { ["User-Agent"] = ua }
  local post_headers = { ["User-Agent"] = ua, ["Content-Type"] = form }

  local function format(line)
    local method, path, body = parse(line)
    return wrk.format(method, path, body and post_headers or headers, body)
  end

  function init(args)
    for line in io.lines(file) do
      n = n + 1
      lines[n] = line
    end
    assert(n > 0, "no requests in " .. file)
    -- A short list (the selector's sessions) is formatted once; a long one (a fresh link per
    -- request) as it is used, so wrk does not hold every request twice.
    if n <= 4096 then
      for k = 1, n do
        formatted[k] = format(lines[k])
      end
    end
  end

  function request()
    i = i + 1
    if i > n then
      i = 1
      wraps = wraps + 1
    end
    return formatted[i] or format(lines[i])
  end
end

function done(summary, latency, requests)
  common.done(summary, latency, { "wraps" })
end
