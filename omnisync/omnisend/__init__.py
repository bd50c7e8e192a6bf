"""The only code that speaks to Omnisend: payloads, pacing, retries and the HTTP client."""
