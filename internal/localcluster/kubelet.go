package localcluster

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
)

// FakeNodeName is the Node the fake kubelet registers and binds Pods to.
const FakeNodeName = "fake-node"

const (
	kubeletWorkers = 2
	// leaseDuration and heartbeatEvery mirror a real kubelet's defaults:
	// without a renewed Lease the node-lifecycle controller marks the node
	// NotReady after its grace period, flips our Pods to not Ready and
	// finally evicts them.
	leaseDuration  = 40 * time.Second
	heartbeatEvery = 10 * time.Second
)

// fakeKubelet plays scheduler and kubelet for a cluster without either: it
// binds every unscheduled Pod to FakeNodeName and reports it Running (and
// Ready unless paused), and finishes graceful deletions at once. That is just
// enough for Deployments and ReplicaSets to roll out for real.
type fakeKubelet struct {
	client kubernetes.Interface
	logf   func(string, ...any)

	podsReady atomic.Bool
	nextIP    atomic.Uint32

	factory informers.SharedInformerFactory
	pods    corev1listers.PodLister
	queue   workqueue.TypedRateLimitingInterface[string]

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// startFakeKubelet registers the node and starts watching Pods. ctx bounds
// only the start-up; the kubelet then runs until stop.
func startFakeKubelet(ctx context.Context, client kubernetes.Interface, logf func(string, ...any)) (*fakeKubelet, error) {
	k := &fakeKubelet{
		client: client,
		logf:   logf,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "fake-kubelet"},
		),
	}
	k.podsReady.Store(true)

	if err := k.registerNode(ctx); err != nil {
		k.queue.ShutDown()
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k.cancel = cancel
	k.factory = informers.NewSharedInformerFactory(client, 0)
	podInformer := k.factory.Core().V1().Pods()
	k.pods = podInformer.Lister()
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			k.queue.Add(key)
		}
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		k.stop()
		return nil, err
	}
	k.factory.Start(runCtx.Done())
	if err := k.factory.WaitForCacheSyncWithContext(ctx).AsError(); err != nil {
		k.stop()
		return nil, fmt.Errorf("fake kubelet: %w", err)
	}

	for range kubeletWorkers {
		k.wg.Go(func() {
			for k.processNext(runCtx) {
			}
		})
	}
	k.wg.Go(func() { k.heartbeat(runCtx) })
	return k, nil
}

// stop ends the workers and the informer and waits for them; safe to call
// more than once.
func (k *fakeKubelet) stop() {
	k.stopOnce.Do(func() {
		if k.cancel != nil {
			k.cancel()
		}
		k.queue.ShutDown()
		if k.factory != nil {
			k.factory.Shutdown()
		}
		k.wg.Wait()
	})
}

// setPodsBecomeReady switches whether Pods are reported Ready. Turning it
// back on revisits every Pod so the ones held back become Ready now.
func (k *fakeKubelet) setPodsBecomeReady(ready bool) {
	if k.podsReady.Swap(ready) == ready || !ready {
		return
	}
	pods, err := k.pods.List(labels.Everything())
	if err != nil {
		return
	}
	for _, pod := range pods {
		if key, err := cache.MetaNamespaceKeyFunc(pod); err == nil {
			k.queue.Add(key)
		}
	}
}

func (k *fakeKubelet) registerNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   FakeNodeName,
		Labels: map[string]string{"kubernetes.io/hostname": FakeNodeName, "kubernetes.io/os": runtime.GOOS},
	}}
	// AlreadyExists means a cluster restarted on the same data: reuse it.
	_, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("fake kubelet: create node: %w", err)
	}
	// Status is ignored on create, so it is set through the subresource.
	return k.postNodeStatus(ctx)
}

// postNodeStatus reports the node Ready with room for many Pods.
func (k *fakeKubelet) postNodeStatus(ctx context.Context) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("16"),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	nodes := k.client.CoreV1().Nodes()
	// Controllers annotate a new Node at once, hence the retry on conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := nodes.Get(ctx, FakeNodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		node.Status = corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{{
				Type:               corev1.NodeReady,
				Status:             corev1.ConditionTrue,
				Reason:             "KubeletReady",
				Message:            "fake kubelet is posting ready status",
				LastHeartbeatTime:  now,
				LastTransitionTime: now,
			}},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
				{Type: corev1.NodeHostName, Address: FakeNodeName},
			},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          "v1.37.2",
				OperatingSystem:         runtime.GOOS,
				Architecture:            runtime.GOARCH,
				ContainerRuntimeVersion: "fake://1.0.0",
			},
		}
		_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("fake kubelet: post node status: %w", err)
	}
	return nil
}

// heartbeat renews the node's Lease, the signal the node-lifecycle controller
// uses to keep the node Ready. Should the node have been marked NotReady all
// the same (say, after a long apiserver outage), it posts Ready again.
func (k *fakeKubelet) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		if err := k.renewLease(ctx); err != nil && ctx.Err() == nil {
			k.logf("fake kubelet: renew lease: %v", err)
		}
		node, err := k.client.CoreV1().Nodes().Get(ctx, FakeNodeName, metav1.GetOptions{})
		if err == nil && !nodeIsReady(node) {
			if err := k.postNodeStatus(ctx); err != nil && ctx.Err() == nil {
				k.logf("%v", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func nodeIsReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (k *fakeKubelet) renewLease(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, FakeNodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		holder, seconds := FakeNodeName, int32(leaseDuration/time.Second)
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: FakeNodeName, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       &holder,
				LeaseDurationSeconds: &seconds,
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

func (k *fakeKubelet) processNext(ctx context.Context) bool {
	key, shutdown := k.queue.Get()
	if shutdown {
		return false
	}
	defer k.queue.Done(key)
	if err := k.sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			k.queue.AddRateLimited(key)
		}
		return true
	}
	k.queue.Forget(key)
	return true
}

// sync moves one Pod one step along its life: finish a graceful deletion,
// bind it, or report it running. Each write triggers a new event, which
// brings the Pod back here for the next step.
func (k *fakeKubelet) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := k.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	pods := k.client.CoreV1().Pods(ns)

	switch {
	case pod.DeletionTimestamp != nil:
		// A real kubelet confirms a graceful deletion once the containers
		// are gone; ours have nothing to stop.
		err := pods.Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64(0)),
			Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err

	case pod.Spec.NodeName == "":
		if len(pod.Spec.SchedulingGates) > 0 {
			return nil // the apiserver refuses to bind gated Pods
		}
		err := pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: FakeNodeName},
		}, metav1.CreateOptions{})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // bound or deleted meanwhile; an event follows
		}
		return err

	case pod.Spec.NodeName != FakeNodeName,
		pod.Status.Phase == corev1.PodSucceeded, pod.Status.Phase == corev1.PodFailed,
		podIsReady(pod):
		return nil
	}

	ready := k.podsReady.Load()
	if !ready && pod.Status.Phase == corev1.PodRunning {
		return nil // already reported running and held back from Ready
	}
	updated := pod.DeepCopy()
	k.setRunning(updated, ready)
	_, err = pods.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err // a conflict is retried with the fresher Pod
}

// setRunning fills in the status a kubelet reports for a Pod whose containers
// all started; ready decides whether they pass their readiness probes.
func (k *fakeKubelet) setRunning(pod *corev1.Pod, ready bool) {
	now := metav1.Now()
	st := &pod.Status
	st.Phase = corev1.PodRunning
	if st.StartTime == nil {
		st.StartTime = &now
	}
	st.HostIP = "127.0.0.1"
	st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	if st.PodIP == "" {
		st.PodIP = k.allocateIP()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}

	readyStatus := corev1.ConditionFalse
	if ready {
		readyStatus = corev1.ConditionTrue
	}
	for _, c := range []struct {
		typ    corev1.PodConditionType
		status corev1.ConditionStatus
	}{
		{corev1.PodReadyToStartContainers, corev1.ConditionTrue},
		{corev1.PodInitialized, corev1.ConditionTrue},
		{corev1.PodScheduled, corev1.ConditionTrue},
		{corev1.ContainersReady, readyStatus},
		{corev1.PodReady, readyStatus},
	} {
		setPodCondition(st, c.typ, c.status, now)
	}

	st.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, corev1.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     c.Image,
			ContainerID: containerID(pod, c.Name),
			Ready:       true,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Reason: "Completed", StartedAt: now, FinishedAt: now,
			}},
		})
	}
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     c.Image,
			ContainerID: containerID(pod, c.Name),
			Ready:       ready,
			Started:     new(true),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
}

// allocateIP hands out addresses from 10.244.0.0/16, distinct for the
// lifetime of the kubelet, so endpoint controllers see plausible Pods.
func (k *fakeKubelet) allocateIP() string {
	n := k.nextIP.Add(1)
	return net.IPv4(10, 244, byte(n>>8), byte(n)).String()
}

func containerID(pod *corev1.Pod, name string) string {
	return fmt.Sprintf("fake://%s/%s", pod.UID, name)
}

// setPodCondition sets a condition, keeping its transition time when the
// status does not change.
func setPodCondition(st *corev1.PodStatus, typ corev1.PodConditionType, status corev1.ConditionStatus, now metav1.Time) {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status != status {
			c.Status = status
			c.LastTransitionTime = now
		}
		c.Reason, c.Message = "", ""
		c.LastProbeTime = metav1.Time{}
		return
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: now})
}

func podIsReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
