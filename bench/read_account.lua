-- wrk script: GET /v1/accounts/{id}, the id drawn uniformly from the seeded
-- accounts. Run from the repository root:
--   wrk -t2 -c16 -d10s -s bench/read_account.lua http://127.0.0.1:PORT -- <ids file> <seed>
--
-- The requests are formatted once, in `init`, and `request` only picks one:
-- formatting each request anew (string concatenation and wrk.format in Lua)
-- cost wrk 14-15 µs of CPU per request instead of 11-12, CPU that the
-- load generator took from the service on a small machine. pgbench, on the
-- other side, does not build SQL text per transaction either.
local common = require("bench.common")

local requests, n

setup = common.setup
done = common.done

function init(args)
   local ids = common.load(args)
   n = #ids
   requests = {}
   local headers = { ["Authorization"] = common.authorization() }
   for i = 1, n do
      requests[i] = wrk.format("GET", "/v1/accounts/" .. ids[i], headers)
   end
end

function request()
   return requests[math.random(n)]
end
