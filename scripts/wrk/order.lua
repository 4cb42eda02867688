-- POST /orders with a fixed, valid body (no Idempotency-Key: every request is a new order).
wrk.method = "POST"
wrk.body = '{"merchant_id": "merchant_123", "amount": 99.99, "currency": "USD"}'
wrk.headers["Content-Type"] = "application/json"
