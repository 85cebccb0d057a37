-- Shared by the wrk scripts of scripts/bench.sh (wrk 4.x, LuaJIT).
--
-- wrk runs one Lua state per thread. `setup` runs in the main state and gives
-- each thread its number; `init` (per thread) loads the account ids from the
-- file that scripts/bench.sh wrote, so both load generators draw from the
-- same seeded set.

local M = {}
local threads = {}
local next_thread = 0

function M.setup(thread)
   thread:set("thread_no", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

-- args: <ids file> <random seed> [<run tag>]
function M.load(args)
   local path = args[1] or error("usage: wrk ... -s script.lua URL -- <ids file> <seed> [tag]")
   local ids = {}
   for line in io.lines(path) do
      if #line > 0 then ids[#ids + 1] = line end
   end
   if #ids < 2 then error("need at least two account ids in " .. path) end
   local seed = tonumber(args[2] or "1") + 7919 * (thread_no or 0)
   math.randomseed(seed)
   return ids
end

-- The Authorization header of every request: the key scripts/bench.sh
-- created for the principal `bench` (BENCH_API_KEY).
function M.authorization()
   local key = os.getenv("BENCH_API_KEY") or error("BENCH_API_KEY is not set (scripts/bench.sh sets it)")
   return "Bearer " .. key
end

-- Two distinct random indexes in [1, n].
function M.pair(n)
   local a = math.random(n)
   local b = math.random(n - 1)
   if b >= a then b = b + 1 end
   return a, b
end

-- Prints one machine-readable line that scripts/bench.sh parses, plus a
-- human-readable error summary. Non-2xx answers are counted by wrk as
-- errors.status (any status > 399; the API never answers 3xx here).
function M.done(summary, latency, requests)
   local e = summary.errors
   local seconds = summary.duration / 1e6
   local errors = e.connect + e.read + e.write + e.status + e.timeout
   -- Throughput counts successful (2xx) answers only, like pgbench's tps.
   local ok = summary.requests - e.status
   io.write(string.format(
      "BENCH requests=%d ok=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f mean_ms=%.3f max_ms=%.3f errors=%d status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      summary.requests, ok, seconds, ok / seconds,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      latency.mean / 1000, latency.max / 1000,
      errors, e.status, e.connect, e.read, e.write, e.timeout))
   if errors > 0 then
      io.write(string.format(
         "ERRORS: %d of %d requests failed (non-2xx: %d, connect: %d, read: %d, write: %d, timeout: %d)\n",
         errors, summary.requests, e.status, e.connect, e.read, e.write, e.timeout))
   end
end

return M
