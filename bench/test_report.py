"""Tests of bench/report.py (run by scripts/test.sh):
python3 -m unittest discover -s bench -p 'test_*.py'."""
import contextlib
import io
import os
import tempfile
import unittest

import report


class CoordinatedOmission(unittest.TestCase):
    def test_a_stall_adds_the_requests_it_held_back_as_wrk_does(self):
        # wrk's stats_correct with expected interval 100: a latency of 1000
        # adds 900, 800, ..., 200 (values above the interval only).
        pairs = report.corrected_for_omission(report.counted([100] * 99 + [1000]), 100)
        self.assertEqual(
            pairs,
            [(100, 99)] + [(v, 1) for v in range(200, 1001, 100)],
        )
        self.assertEqual(report.weighted_percentile(pairs, 99), 900)

    def test_latencies_under_twice_the_interval_are_left_alone(self):
        latencies = [50, 120, 199, 150]
        pairs = report.corrected_for_omission(report.counted(latencies), 100)
        self.assertEqual(pairs, [(50, 1), (120, 1), (150, 1), (199, 1)])

    def test_repeated_values_add_their_count(self):
        pairs = dict(report.corrected_for_omission(report.counted([300, 300]), 100))
        self.assertEqual(pairs, {300: 2, 200: 2})

    def test_nearest_rank(self):
        pairs = [(1, 50), (2, 49), (3, 1)]
        self.assertEqual(report.weighted_percentile(pairs, 50), 1)
        self.assertEqual(report.weighted_percentile(pairs, 99), 2)
        self.assertEqual(report.weighted_percentile(pairs, 100), 3)


class PgbenchLog(unittest.TestCase):
    def run_log(self, lines, duration_s, clients):
        with tempfile.TemporaryDirectory() as directory:
            prefix = os.path.join(directory, "log")
            with open(prefix + ".123", "w") as log:
                log.write("\n".join(lines) + "\n")
            output = io.StringIO()
            with contextlib.redirect_stdout(output):
                report.pgbench_log(prefix, duration_s, clients)
        return dict(token.split("=", 1) for token in output.getvalue().split())

    def test_percentiles_are_corrected_and_the_raw_ones_kept(self):
        # One client, 100 transactions in 1 s: expected interval 10,000 µs.
        # 99 take 1 ms; one takes 100 ms and stands for 8 held back
        # (90, 80, ..., 20 ms).
        lines = [f"0 {n} 1000 0 1700000000 {n}" for n in range(99)]
        lines.append("0 99 100000 0 1700000001 0")
        values = self.run_log(lines, 1.0, 1)
        self.assertEqual(values["log_transactions"], "100")
        self.assertEqual(values["raw_p99_ms"], "1.000")
        self.assertEqual(values["max_ms"], "100.000")
        # 108 samples after the correction; rank 107 is 90 ms.
        self.assertEqual(values["p99_ms"], "90.000")
        self.assertEqual(values["p50_ms"], "1.000")

    def test_failed_transactions_and_retries_are_counted(self):
        lines = [
            "0 0 1000 0 1700000000 0 0 2",
            "0 1 failed 0 1700000000 0 0 8",
            "1 0 2000 0 1700000000 0 0 0",
        ]
        values = self.run_log(lines, 1.0, 2)
        self.assertEqual(values["log_transactions"], "2")
        self.assertEqual(values["log_failed"], "1")
        self.assertEqual(values["log_retries"], "2")


class Authentication(unittest.TestCase):
    def test_the_cost_per_request_is_set_against_the_services_cpu(self):
        workloads = [
            # 0.9 cores for 60,000 reads/s: 15 µs per read.
            {"workload": "read_account", "service": {"rps": 60000.0, "cpu_server": 0.9}},
            {"workload": "transfer", "service": {"rps": 5000.0, "cpu_server": 0.5}},
        ]
        with tempfile.TemporaryDirectory() as runs:
            with open(os.path.join(runs, "auth"), "w") as f:
                f.write("auth_api_key_ns=550\nauth_rate_limit_ns=150\n")
            auth = report.authentication(runs, workloads)
        self.assertEqual(auth["per_request_ns"], 700)
        self.assertEqual(auth["by_workload"]["read_account"]["service_cpu_us_per_request"], 15.0)
        self.assertAlmostEqual(auth["by_workload"]["read_account"]["share"], 0.0467, places=4)
        self.assertEqual(auth["by_workload"]["transfer"]["service_cpu_us_per_request"], 100.0)
        self.assertIn("0.70 µs of CPU", auth["summary"])
        self.assertIn("4.7% of the service's 15.0 µs per read account", auth["summary"])

    def test_a_run_without_auth_figures_reports_none(self):
        with tempfile.TemporaryDirectory() as runs:
            self.assertIsNone(report.authentication(runs, []))


if __name__ == "__main__":
    unittest.main()
