"""An oslo.messaging notification listener (tests/product/audit_messaging.rs):
reads audit notifications from RabbitMQ as an OpenStack consumer would
(transport URL argv[1], topic "notifications", exchange "openstack"), prints
each as one JSON line {"event_type", "publisher_id", "payload"} and exits
after argv[2] notifications or argv[3] seconds."""

import json
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging

url, want, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
conf = cfg.ConfigOpts()
conf([])
transport = oslo_messaging.get_notification_transport(conf, url=url)
got = []
done = threading.Event()
# The listener's threads call info() concurrently: one line at a time.
lock = threading.Lock()


class Endpoint:
    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        line = json.dumps({"event_type": event_type, "publisher_id": publisher_id,
                           "payload": payload})
        with lock:
            if len(got) >= want:
                return
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            got.append(event_type)
            if len(got) >= want:
                done.set()


listener = oslo_messaging.get_notification_listener(
    transport, [oslo_messaging.Target(topic="notifications", exchange="openstack")],
    [Endpoint()], executor="threading")
listener.start()
done.wait(limit)
listener.stop()
listener.wait()
transport.cleanup()
