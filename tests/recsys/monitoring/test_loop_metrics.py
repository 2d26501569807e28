"""The loop's Prometheus figures (recsys.monitoring.loop_metrics): a verdict's series in the textfile
format, kept when a later decision or promotion writes its own, and pushed to a real Pushgateway protocol
endpoint (a loopback HTTP server standing in for it records the PUT)."""

import http.server
import threading
from datetime import datetime, timezone

from prometheus_client.parser import text_string_to_metric_families

from recsys.monitoring import loop_metrics
from recsys.monitoring.verdict import Decision, DriftVerdict, Signal

NOW = datetime(2025, 7, 1, tzinfo=timezone.utc)


def verdict():
    return DriftVerdict(model_name="m", model_version="3", window_start=NOW, window_end=NOW, reference_start=NOW,
                        reference_end=NOW, n_events=2300, n_users=360,
                        signals=[Signal(name="data_drift", kind="drift", value=0.625, threshold=0.3, fired=True),
                                 Signal(name="outcome_ndcg", kind="outcome", value=0.09, reference=0.128,
                                        threshold=0.2, fired=True)])


def samples(text):
    return {(s.name, s.labels.get("signal")): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_textfile_keeps_the_verdict_when_a_decision_is_written(tmp_path):
    path = tmp_path / "loop.prom"
    loop_metrics.publish("m", verdict=verdict(), textfile=path)
    loop_metrics.publish("m", decision=Decision(retrain=True, alert=True, reason="x", window_end=NOW, consecutive=2),
                         textfile=path)
    got = samples(path.read_text())
    assert got[("recsys_drift_signal_value", "data_drift")] == 0.625
    assert got[("recsys_drift_signal_fired", "outcome_ndcg")] == 1.0
    assert got[("recsys_drift_signal_reference", "outcome_ndcg")] == 0.128
    assert got[("recsys_retrain_decision", None)] == 1.0 and got[("recsys_retrain_consecutive_windows", None)] == 2
    assert got[("recsys_drift_window_events", None)] == 2300


def test_pushed_to_a_gateway(tmp_path):
    received = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802 - the Pushgateway API
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"])).decode()))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        loop_metrics.publish("m", promoted=True, pushgateway=f"127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    path, body = received[0]
    assert path == "/metrics/job/recsys-loop" and 'recsys_model_promoted{model="m"} 1.0' in body
