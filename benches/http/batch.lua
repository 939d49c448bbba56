-- wrk script: POST batches of 100 decision requests to /v1/decide/batch.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local one = '{"principal": {"id": "alice@corp.example", "groups": ["data-eng"], "mfa": true}, "action": "trigger", "dag": "etl_daily", "host": "stg-af-worker-01"}'
local items = {}
for i = 1, 100 do items[i] = one end
wrk.body = '{"requests": [' .. table.concat(items, ",") .. ']}'
