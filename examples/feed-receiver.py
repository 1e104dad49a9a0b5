#!/usr/bin/env python3
"""A change feed receiver: checks each delivery's signature with the official Standard Webhooks
library (`pip install standardwebhooks`) before trusting it, handles each event id once
(deliveries are at least once), answers 204. PORT and FEED_SECRET come from the environment;
FEED_SECRET is the sink's signing Secret value (`whsec_` + base64)."""
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

WEBHOOK = Webhook(os.environ.get("FEED_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
seen = set()


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        try:
            # Checks the signature, and that the timestamp is within 5 minutes of now.
            event = WEBHOOK.verify(body, dict(self.headers.items()))
        except WebhookVerificationError:
            self.send_response(401)
            self.end_headers()
            return
        if event["id"] not in seen:
            seen.add(event["id"])
            print(event["type"], event["subject"], ",".join(event["data"]["triggers"]), flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Hook).serve_forever()
