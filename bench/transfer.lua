-- wrk script: POST /v1/transfers of 1 unit between two distinct accounts
-- drawn uniformly from the seeded accounts, each request with its own
-- Idempotency-Key: a random prefix (so that keys spread over the key index as
-- pgbench's random keys do, rather than piling onto one index page), then the
-- run tag, thread number and a per-thread counter, so keys never repeat
-- across threads, runs or warm-ups. Run from
-- the repository root:
--   wrk -t2 -c16 -d10s -s bench/transfer.lua http://127.0.0.1:PORT -- <ids file> <seed> <run tag>
local common = require("bench.common")

local ids, n, tag
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

setup = common.setup
done = common.done

function init(args)
   headers["Authorization"] = common.authorization()
   ids = common.load(args)
   n = #ids
   tag = args[3] or "run"
end

function request()
   counter = counter + 1
   local a, b = common.pair(n)
   headers["Idempotency-Key"] = string.format("%09d%09d-%s-%d-%d",
      math.random(0, 999999999), math.random(0, 999999999), tag, thread_no, counter)
   local body = '{"from":"' .. ids[a] .. '","to":"' .. ids[b] .. '","amount":1}'
   return wrk.format("POST", "/v1/transfers", headers, body)
end
