-- A full sandbox card payment is four requests: open a fresh link (GET /checkout?…), choose
-- card (POST /pay/{token}/method → 303), submit the card form (POST /pay/{token}/card → 303),
-- show the result page (GET …/card/result, which must say "result-success"). wrk calls
-- request() and response() per thread, not per connection, so a payment's next step goes to a
-- FIFO queue that any connection takes from; with the queue empty, a connection starts a new
-- payment with the next link of $BENCH_REQUESTS (`GET<TAB>path` lines). `paid` counts
-- payments that reached the success page, `lost` the steps whose answer was not the next one
-- expected (the payment is then abandoned), `wraps` how often the links ran out.
local common = dofile((os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/common.lua")
setup = common.setup

local file = assert(os.getenv("BENCH_REQUESTS"), "BENCH_REQUESTS: the link list")
local card_fields = assert(os.getenv("BENCH_CARD_FIELDS"), "BENCH_CARD_FIELDS: the card form")
local ua = os.getenv("BENCH_UA")
local get_headers = { ["User-Agent"] = ua }
local post_headers = { ["User-Agent"] = ua, ["Content-Type"] = "application/x-www-form-urlencoded" }

paid, lost, wraps = 0, 0, 0
local links, n, next_link = {}, 0, 0
local queue, head, tail = {}, 1, 0
-- The selector's CSRF token by session token, until the card form is posted with it.
local csrf_of = {}

function init(args)
  for line in io.lines(file) do
    n = n + 1
    links[n] = line:match("^GET\t(.+)$")
  end
  assert(n > 0, "no links in " .. file)
end

local function push(req)
  tail = tail + 1
  queue[tail] = req
end

function request()
  if head <= tail then
    local r = queue[head]
    queue[head] = nil
    head = head + 1
    return r
  end
  next_link = next_link + 1
  if next_link > n then
    next_link = 1
    wraps = wraps + 1
  end
  return wrk.format("GET", links[next_link], get_headers)
end

function response(status, headers, body)
  if status == 303 then
    local loc = headers["Location"] or headers["location"] or ""
    local token = loc:match("^/pay/([^/]+)/card$")
    if token and csrf_of[token] then
      local csrf = csrf_of[token]
      csrf_of[token] = nil
      push(wrk.format("POST", loc, post_headers, "csrf=" .. csrf .. "&" .. card_fields))
      return
    end
    if loc:find("/card/result", 1, true) then
      push(wrk.format("GET", loc, get_headers))
      return
    end
  elseif status == 200 then
    if body:find("result-success", 1, true) then
      paid = paid + 1
      return
    end
    local action = body:match('action="(/pay/[^/"]+/method)"')
    local csrf = body:match('name="csrf" value="([^"]+)"')
    if action and csrf then
      csrf_of[action:match("^/pay/([^/]+)/method$")] = csrf
      push(wrk.format("POST", action, post_headers, "csrf=" .. csrf .. "&method=card"))
      return
    end
  end
  lost = lost + 1
end

function done(summary, latency, requests)
  common.done(summary, latency, { "paid", "lost", "wraps" })
end
