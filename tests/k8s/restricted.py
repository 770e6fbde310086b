"""A checker for the Pod Security Standards "restricted" profile (a test helper).

Follows https://kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline and
restricted controls) on a pod spec as the API server receives it (camelCase dicts), plus the
project's own rule that the root filesystem is read-only. ``restricted_violations`` returns one
line per broken rule, empty when the spec passes.
"""

from __future__ import annotations

from typing import Any

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def _containers(spec: dict[str, Any]):
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            yield f"{key}[{c.get('name')}]", c


def restricted_violations(spec: dict[str, Any], *, read_only_root: bool = True) -> list[str]:
    """Rules of the restricted profile that ``spec`` (a PodSpec dict) breaks."""
    out: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(f"spec.{key} is true")
    for vol in spec.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            out.append(f"volume {vol.get('name')}: type {sorted(kinds)} not allowed")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            out.append(f"sysctl {sysctl.get('name')} not allowed")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in _SECCOMP_OK:
        out.append(f"pod seccompProfile {pod_seccomp}")
    if pod_sc.get("runAsNonRoot") is False:
        out.append("pod runAsNonRoot is false")
    if pod_sc.get("runAsUser") == 0:
        out.append("pod runAsUser is 0")
    if pod_sc.get("windowsOptions", {}).get("hostProcess"):
        out.append("pod hostProcess")
    for where, c in _containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{where}: adds capabilities {caps['add']}")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"{where}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            out.append(f"{where}: runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in _SECCOMP_OK:
            out.append(f"{where}: seccompProfile is {seccomp}, not RuntimeDefault/Localhost")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"{where}: procMount {sc['procMount']}")
        se = sc.get("seLinuxOptions") or pod_sc.get("seLinuxOptions") or {}
        if se.get("user") or se.get("role"):
            out.append(f"{where}: seLinuxOptions user/role set")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            out.append(f"{where}: hostPort")
        if read_only_root and sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{where}: readOnlyRootFilesystem is not true")
    return out


def spark_role_pod(app: dict[str, Any], role: str) -> dict[str, Any]:
    """The pod spec spark-operator makes for ``role`` (driver/executor) of a SparkApplication,
    as far as the security rules see it."""
    spec = app["spec"]
    body = spec[role]
    container = {"name": f"spark-kubernetes-{role}", "securityContext": body.get("securityContext")}
    return {
        "securityContext": body.get("podSecurityContext"),
        "hostNetwork": body.get("hostNetwork"),
        "volumes": spec.get("volumes") or [],
        "initContainers": body.get("initContainers") or [],
        "containers": [container, *(body.get("sidecars") or [])],
    }
