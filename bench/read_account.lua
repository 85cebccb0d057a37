-- wrk script: GET /v1/accounts/{id}, the id drawn uniformly from the seeded
-- accounts. Run from the repository root:
--   wrk -t2 -c16 -d10s -s bench/read_account.lua http://127.0.0.1:PORT -- <ids file> <seed>
local common = require("bench.common")

local ids, n

setup = common.setup
done = common.done

function init(args)
   ids = common.load(args)
   n = #ids
end

function request()
   return wrk.format("GET", "/v1/accounts/" .. ids[math.random(n)])
end
