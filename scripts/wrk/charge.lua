-- POST /charge straight to payment-service, a new order (and key) per
-- request: each thread numbers its own, under a prefix unique to the run.
-- The service key is scripts/bench.py's API_KEY.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
local run = os.time() % 0xffffffff
function request()
  n = n + 1
  local id = string.format("%08x-%04x-4000-8000-%012x", run, tid, n)
  local body = '{"order_id":"' .. id .. '","merchant_id":"merchant_123","amount":99.99,"currency":"USD"}'
  return wrk.format("POST", "/charge",
    { ["Content-Type"] = "application/json", ["Idempotency-Key"] = id,
      ["Authorization"] = "Bearer bench-payment-key" }, body)
end
