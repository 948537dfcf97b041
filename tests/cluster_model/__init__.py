"""A model of the cluster the stacks create, to prove where every pod lands (no cluster, no helm binary here).

- ``facts.py`` + tests/reference/charts/, tests/reference/eks-addons/: the pinned charts' and EKS add-ons' default
  placement values and pod templates, recorded from upstream source per version;
- ``helm.py``: Helm's value merging (coalesce rules), so our values combine with those defaults as Helm does;
- ``nodes.py`` + tests/reference/nodes/: one node per node group and instance type of the infra stack, with the
  labels kubelet, EKS and nodeadm give it and its allocatable after AL2023's reservations; and, with Karpenter, one
  node per NodePool, instance type and capacity type it allows (``<pool>/<type>/<spot|on-demand>``), labelled from the
  pool's template and by Karpenter, tainted as the template says (test_karpenter.py: each worker matches exactly its
  own pool, every DaemonSet reaches Karpenter's nodes);
- ``workloads.py``: every pod-producing object of the synth and of scripts/render_jobs.py, as pod specs;
- ``scheduling.py`` + ``model.py``: the scheduler's filters (selector, required node affinity, taints, requests,
  CSI node plugins), DaemonSets first;
- ``intended.py``: where each workload is meant to run, checked by test_placement.py;
- test_overhead.py: the DaemonSets on each node group, against config/capacity.py DAEMONSETS (what synth-time
  node-fit validation subtracts); test_facts.py: the add-ons' configuration_values against their recorded schemas.

Assumed, not proven: EKS add-ons render as the upstream chart version recorded (EKS does not publish the
-eksbuild -> chart mapping; kube-proxy's and CoreDNS's specs are unverified, see their fact files; kube-proxy's
requests are config/capacity.py's one recorded value); the aws-fsx-csi-driver and amazon-cloudwatch-observability
add-ons accept the chart keys we configure (no published EKS schema was found; coredns' and vpc-cni's are published);
memory capacity is the nominal size less Karpenter's default 7.5% estimate. Not modelled: soft preferences
(preferred affinity, pod anti-affinity, topology spread), which move pods within a group, and cluster-autoscaler's
scale-from-zero template (its allocatable equals capacity, so a pod that fits a real node fits the template).
"""
