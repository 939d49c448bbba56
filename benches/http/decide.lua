-- wrk script: POST one decision request per call to /v1/decide.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"principal": {"id": "alice@corp.example", "groups": ["data-eng"], "mfa": true}, "action": "trigger", "dag": "etl_daily", "host": "stg-af-worker-01"}'
