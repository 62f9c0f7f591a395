"""Conformance of the REST API to OpenWhisk's own contract (apiv1swagger.json, upstream's swagger,
copied here as it is): schemathesis generates requests for every operation of the contract and
checks that no answer is a server error and that every answer matches the contract's schema for
its status. It drives a private platform (bench/whiskbench.Stack: its own broker, controller and
invoker, removed afterwards) holding one entity of each kind, so that some generated requests
reach real ones."""
import os
import re
import subprocess
import sys

import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import whiskbench as wb  # noqa: E402

SPEC = os.path.join(os.path.dirname(__file__), "apiv1swagger.json")
CONFIG = os.path.join(os.path.dirname(__file__), "schemathesis.toml")
MANIFEST = os.path.join(ROOT, "runtimes.json")


def seed(api):
    """One action (web-exported), a package with an action, a trigger with a rule."""
    auth = tuple(wb.GUEST_AUTH.split(":"))
    code = "def main(args):\n    return {'ok': True}\n"
    calls = [
        ("PUT", "/actions/hello", {"exec": {"kind": "python:3", "code": code}, "annotations": [{"key": "web-export", "value": True}]}),
        ("PUT", "/packages/pkg", {"parameters": [{"key": "p", "value": 1}]}),
        ("PUT", "/actions/pkg/act", {"exec": {"kind": "python:3", "code": code}}),
        ("PUT", "/triggers/trig", {}),
        ("PUT", "/rules/rul", {"trigger": "/_/trig", "action": "/_/hello"}),
        ("POST", "/actions/hello?blocking=true", {}),
    ]
    for method, path, body in calls:
        reply = requests.request(method, api + "/api/v1/namespaces/_" + path, json=body, auth=auth, timeout=120)
        assert reply.status_code in (200, 202), (path, reply.status_code, reply.text)


def test_every_operation_of_the_contract_answers_without_server_errors_and_as_its_schema_says(tmp_path):
    with wb.Stack("conformance", invokers=1, invoker_args=["--prewarm", "0", "--runtimes-manifest", MANIFEST],
                  controller_args=["--runtimes-manifest", MANIFEST]) as stack:
        seed(stack.api)
        report = tmp_path / "report.xml"
        run = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "schemathesis"), "--config-file", CONFIG, "run", SPEC, "--url", stack.api + "/api/v1",
             "-H", "Authorization: " + wb.GUEST_AUTHORIZATION,
             "--checks", "not_a_server_error,response_schema_conformance",
             "--max-examples", os.environ.get("WHISK_CONFORMANCE_EXAMPLES", "30"), "--seed", "20261206",
             "--request-timeout", "90", "--report", "junit", "--report-junit-path", str(report)],
            capture_output=True, text=True, timeout=1800, cwd=tmp_path)  # its cache goes there, not into the repository
        output = run.stdout + run.stderr
        print(output[-6000:])
        # Positive control: every operation of the contract was tested (not an empty selection);
        # the same run against the API of 2026-11 found 14 distinct failures (issue 13).
        tested = re.search(r"Tested: (\d+)", output)
        assert tested and int(tested.group(1)) == 33, output[-3000:]
        assert report.exists() and report.read_text().count("<testcase") >= 33, output[-3000:]
        assert run.returncode == 0, output[-8000:]
