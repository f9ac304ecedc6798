"""The emulator's kube-controller-manager, scheduler and kubelet status loop, one module per controller.

:class:`ControllerManager` (``manager.py``) keeps an informer (``cache.py``) of the objects the controllers care about
and, on :meth:`ControllerManager.reconcile`, runs them in passes until a pass writes nothing: the garbage collector
(``garbage.py``), taint eviction (``eviction.py``), the HorizontalPodAutoscaler (``hpa.py``), Deployment
(``deployment.py``), ReplicaSet (``replicaset.py``), StatefulSet (``statefulset.py``), DaemonSet (``daemonset.py``) and
Job (``job.py``) controllers, the scheduler (``scheduler.py``, with the placement rules in ``placement.py``), the
Cluster Autoscaler while its add-on runs (``autoscaler.py``), the pod status the kubelets report
(``podstatus.py``), the disruption controller (``disruption.py``) and the root CA publisher (``rootca.py``).
``base.py`` holds what they share (the writes, events, pod creation, controller revisions).

Known deviations:
- Deleted pods vanish at once (no graceful termination, no ``Terminating`` phase); a pod the API marks with a
  deletionTimestamp is removed on the next pass.
- Paused deployments only scale a lone ReplicaSet; there is no proportional scaling of several active ReplicaSets
  when a deployment is resized mid-rollout (the rolling update logic still keeps the surge and unavailability bounds).
- Orphaned ReplicaSets/Pods whose labels match a selector are not adopted; dependents whose controller owner is gone
  are deleted (what the garbage collector would do in the background).
- The scheduler runs the NodeUnschedulable, TaintToleration (NoSchedule/NoExecute; the not-ready and unschedulable
  taints the node lifecycle controller would add), NodeAffinity (``nodeSelector``, required terms with
  matchExpressions/matchFields) and NodeResourcesFit (cpu, memory, pod count) filters, and ranks feasible nodes by
  untolerated PreferNoSchedule taints, then preferred node affinity weight, then least allocation (a lexicographic
  order, not the default profile's weighted sum of normalised plugin scores). Inter-pod affinity/anti-affinity,
  topology spread constraints, host ports, volume topology and preemption are not modelled: a pod short of resources
  is Unschedulable with "No preemption victims found for incoming pod" even when lower-priority pods could be
  preempted.
- The taint eviction controller counts ``tolerationSeconds`` from the taint's ``timeAdded`` (node groups stamp it;
  a NoExecute taint written without one counts from each pass, so it never expires).
- DaemonSet pods are bound directly (``spec.nodeName``) to every node passing their nodeSelector, node affinity and
  taints (with the DaemonSet controller's tolerations) that is also Ready and not cordoned (a real DaemonSet also
  runs on cordoned and not-ready nodes);
  StatefulSet updates ignore ``maxUnavailable``; Job pods count failures only by pod phase (restarts of an
  OnFailure pod do not count against backoffLimit).
- ReplicaSet pod-template hashes are fnv32a over canonical JSON, so names differ from a real cluster's.
- The HorizontalPodAutoscaler controller has no metrics: its recommendation is the target's current
  ``spec.replicas`` clamped into ``[minReplicas (default 1), maxReplicas]``, with no stabilization window, no
  ``behavior`` policies and no sync period (it acts on every pass). Like the real one it leaves a target at 0
  replicas alone (``ScalingActive=False``, reason ``ScalingDisabled``), writes the target's ``spec.replicas`` as the
  ``/scale`` subresource would (generation bumped, ``managedFields`` entry of ``kube-controller-manager``, operation
  ``Update``, subresource ``scale``) and sets ``status`` (currentReplicas, desiredReplicas, lastScaleTime when it
  scaled, conditions AbleToScale/ScalingActive/ScalingLimited). ``ScalingActive=True`` says ``ValidMetricFound``
  although nothing is measured; no ``currentMetrics``; no events.
- No CronJob controller: CronJobs are stored and served but never create Jobs.
- The disruption controller counts the scale of pods owned by Deployments (through their ReplicaSets), ReplicaSets
  and StatefulSets; pods of other controllers or none are left out of ``expectedPods`` for percentage and
  ``maxUnavailable`` budgets (the real controller reports them in a SyncFailed condition or event). The Eviction
  subresource is not served, so nothing consults ``disruptionsAllowed``.
- The root CA publisher writes ``kube-root-ca.crt`` (``ca.crt`` = the emulator's own CA) in every namespace, the
  seeded ones included, when the cluster is built.
- Events are recorded for a few transitions only (ScalingReplicaSet, SuccessfulCreate/Delete, Scheduled,
  FailedScheduling, TaintManagerEviction, the kubelet's Failed/BackOff warnings and the Cluster Autoscaler's
  TriggeredScaleUp/NotTriggerScaleUp), never aggregated (``count`` stays 1), and expire after an hour of simulated
  time.
- The Cluster Autoscaler (``autoscaler.py``) scales up only: no scale-down of idle nodes, one node group per loop,
  no ``--balance-similar-node-groups``; its estimator does not count the DaemonSet pods a new node would run; the
  IAM permissions of its pod (Pod Identity, ``autoscaling:SetDesiredCapacity``) are not checked and the node group's
  new size reaches the node pool only (moto's ``DescribeNodegroup`` keeps its desiredSize, as EKS's does until it
  reconciles with the Auto Scaling group); a new node exists as a ``NotReady`` Node at once (a real instance
  registers some seconds after launch) and is Ready after 60 s; ``NotTriggerScaleUp`` is recorded when its message
  changes rather than every 10 s loop, with its reasons sorted (CA's order is a Go map's).
"""

from __future__ import annotations

from local.cluster.controllers.hpa import HPA_MANAGER
from local.cluster.controllers.manager import ControllerManager

__all__ = ["HPA_MANAGER", "ControllerManager"]
