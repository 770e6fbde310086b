"""The pipeline's namespace enforces Pod Security "restricted" on the real cluster."""

from __future__ import annotations

PRIVILEGED = """
apiVersion: v1
kind: Pod
metadata: {name: privileged-probe, namespace: synthllm}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: localhost/synthllm-debian:bookworm
    imagePullPolicy: Never
    command: ["true"]
    securityContext: {privileged: true}
"""


def test_the_restricted_namespace_refuses_a_privileged_pod(kubectl):
    labels = kubectl("get", "namespace", "synthllm", "-o", "jsonpath={.metadata.labels}").stdout
    assert '"pod-security.kubernetes.io/enforce":"restricted"' in labels
    done = kubectl("apply", "-f", "-", stdin=PRIVILEGED, check=False)
    assert done.returncode != 0
    assert 'violates PodSecurity "restricted' in done.stderr and "privileged" in done.stderr
    listed = kubectl("-n", "synthllm", "get", "pod", "privileged-probe", check=False)
    assert listed.returncode != 0 and "NotFound" in listed.stderr
