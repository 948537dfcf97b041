"""The Pod Security Standards' checks, as Pod Security admission applies them to a pod spec (kubernetes-validate
checks the schema only, not these).

Written from the upstream definitions, kubernetes/kubernetes staging/src/k8s.io/pod-security-admission/policy/
check_*.go (the versions current for Kubernetes 1.33-1.35): each check below names its file. ``violations(spec,
level)`` lists what a pod spec breaks at ``baseline`` or ``restricted`` (restricted includes baseline); an empty list
means admission lets it in. Two relaxations of the upstream checks are not modelled, both only ever allow more:
the user-namespace pods (``hostUsers: false``) for which runAsNonRoot/runAsUser are relaxed, and the sysctls
allowed since 1.27 beyond the 1.0 set (our pods set no sysctls).
"""

from __future__ import annotations

from collections.abc import Iterator

from conventions.kubernetes import POD_SECURITY_LABEL, POD_SECURITY_LEVELS

# check_capabilities_baseline.go: capabilities.add within the container runtime's default set.
BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
# check_sysctls.go (1.0): the namespaced, isolated sysctls.
SAFE_SYSCTLS = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                          "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"})
# check_restrictedVolumes.go: the volume types restricted allows.
RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                                "projected", "secret"})
# check_seLinuxOptions.go: the SELinux types baseline allows (empty: the runtime's default).
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})


def containers(spec: dict) -> Iterator[dict]:
    """Every container Pod Security visits: init, regular and ephemeral (policy/visitor.go visitContainers)."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _sc(c: dict) -> dict:
    return c.get("securityContext") or {}


def baseline(spec: dict) -> list[str]:
    out = []
    psc = spec.get("securityContext") or {}
    for ns in ("hostNetwork", "hostPID", "hostIPC"):  # check_hostNamespaces.go
        if spec.get(ns):
            out.append(f"{ns}=true")
    for c in containers(spec):
        name, sc = c.get("name"), _sc(c)
        if sc.get("privileged"):  # check_privileged.go
            out.append(f"container {name}: privileged")
        added = set((sc.get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:  # check_capabilities_baseline.go
            out.append(f"container {name}: adds capabilities {sorted(added - BASELINE_CAPABILITIES)}")
        for p in c.get("ports") or []:  # check_hostPorts.go
            if p.get("hostPort"):
                out.append(f"container {name}: hostPort {p['hostPort']}")
        if sc.get("procMount") not in (None, "Default"):  # check_procMount.go
            out.append(f"container {name}: procMount {sc['procMount']}")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):  # check_windowsHostProcess.go
            out.append(f"container {name}: Windows hostProcess")
    for where, sc in [("pod", psc), *((f"container {c.get('name')}", _sc(c)) for c in containers(spec))]:
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":  # check_seccompProfile_baseline.go
            out.append(f"{where}: seccompProfile Unconfined")
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":  # check_appArmorProfile.go
            out.append(f"{where}: appArmorProfile Unconfined")
        se = sc.get("seLinuxOptions") or {}  # check_seLinuxOptions.go
        if se.get("type", "") not in SELINUX_TYPES or se.get("user") or se.get("role"):
            out.append(f"{where}: seLinuxOptions {se}")
    for s in psc.get("sysctls") or []:  # check_sysctls.go
        if s.get("name") not in SAFE_SYSCTLS:
            out.append(f"sysctl {s.get('name')}")
    for v in spec.get("volumes") or []:  # check_hostPathVolumes.go
        if "hostPath" in v:
            out.append(f"volume {v.get('name')}: hostPath")
    return out


def restricted(spec: dict) -> list[str]:
    out = baseline(spec)
    psc = spec.get("securityContext") or {}
    for v in spec.get("volumes") or []:  # check_restrictedVolumes.go
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"volume {v.get('name')}: type {sorted(kinds)}")
    pod_non_root = psc.get("runAsNonRoot")
    if pod_non_root is False:  # check_runAsNonRoot.go
        out.append("pod: runAsNonRoot=false")
    if psc.get("runAsUser") == 0:  # check_runAsUser.go
        out.append("pod: runAsUser=0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in containers(spec):
        name, sc = c.get("name"), _sc(c)
        if sc.get("allowPrivilegeEscalation") is not False:  # check_allowPrivilegeEscalation.go
            out.append(f"container {name}: allowPrivilegeEscalation != false")
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod_non_root is not True):
            out.append(f"container {name}: runAsNonRoot != true")
        if sc.get("runAsUser") == 0:
            out.append(f"container {name}: runAsUser=0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")  # check_seccompProfile_restricted.go
        if seccomp not in ("RuntimeDefault", "Localhost") and not (seccomp is None and
                                                                   pod_seccomp in ("RuntimeDefault", "Localhost")):
            out.append(f"container {name}: no RuntimeDefault or Localhost seccompProfile")
        caps = sc.get("capabilities") or {}  # check_capabilities_restricted.go
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"container {name}: capabilities.drop lacks ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"container {name}: adds capabilities {sorted(set(caps['add']) - {'NET_BIND_SERVICE'})}")
    return out


def violations(spec: dict, level: str) -> list[str]:
    if level == "privileged":
        return []
    if level == "baseline":
        return baseline(spec)
    if level == "restricted":
        return restricted(spec)
    raise ValueError(f"not a Pod Security level: {level!r}")


def enforced_level(labels: dict | None) -> str:
    """The level a namespace enforces: its enforce label, or privileged without one (admission's default)."""
    level = (labels or {}).get(f"{POD_SECURITY_LABEL}/enforce", "privileged")
    if level not in POD_SECURITY_LEVELS:
        raise ValueError(f"not a Pod Security level: {level!r}")
    return level


def allows_host_access(level: str) -> bool:
    """Whether pods of that level may reach the node: privileged containers, host namespaces, hostPath."""
    return level == "privileged"
