-- POST /orders, each request under an Idempotency-Key of its own (a new
-- order and a new key every time: the keyed path end to end).
local thread_id = 0

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  math.randomseed(os.time() + id)
  run = string.format("%08x", math.random(0, 0x7fffffff))
  n = 0
end

function request()
  n = n + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("wrk-%s-%d-%d", run, id, n),
  }
  return wrk.format("POST", nil, headers,
    '{"merchant_id": "merchant_123", "amount": 99.99, "currency": "USD"}')
end
