"""Send a measurement to a hetally task: python send.py SERVER TASK_ID VALUE"""
import sys
import urllib.request

import hetally

server, task_id, value = sys.argv[1:4]
client = hetally.Client(server, task_id)  # fetches the task and checks its id
print(client.task)
report_id = client.send(value)  # encrypts, proves, uploads (with retries)
print("sent", report_id)

# With your own HTTP stack: prepare the bytes, then PUT them.
report = client.prepare(value)
request = urllib.request.Request(
    client.upload_url, data=report.bytes, method="PUT",
    headers={"Content-Type": client.media_type},
)
with urllib.request.urlopen(request) as answer:
    print("sent", report.id, answer.status)
