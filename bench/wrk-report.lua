-- The request: GET unless WRK_METHOD says otherwise; WRK_BODY, when set, is sent with every request.
wrk.method = os.getenv("WRK_METHOD") or "GET"
wrk.body = os.getenv("WRK_BODY")

-- wrk's summary as one JSON line, so the bench reads numbers, not wrk's text.
-- Latencies in microseconds; errors.status counts answers with status >= 400.
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout))
end
