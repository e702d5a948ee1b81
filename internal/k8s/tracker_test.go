package k8s

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

var now0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// fakeDeployment is a Deployment in the state the controller would leave it
// in: rolled out (complete) at generation gen with the given image.
func fakeDeployment(name, image string, gen int64) *appsv1.Deployment {
	replicas := int32(2)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: "uid-" + "name", Generation: gen},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
		Status: complete(gen, 2),
	}
}

func complete(gen int64, n int32) appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{
		ObservedGeneration: gen, Replicas: n, UpdatedReplicas: n, AvailableReplicas: n, ReadyReplicas: n,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: reasonNewReplicaSetAvailable}},
	}
}

func progressing(gen int64) appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{
		ObservedGeneration: gen, Replicas: 3, UpdatedReplicas: 1, AvailableReplicas: 2,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "ReplicaSetUpdated"}},
	}
}

func deadlineExceeded(gen int64, at time.Time) appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{
		ObservedGeneration: gen, Replicas: 3, UpdatedReplicas: 1, AvailableReplicas: 2,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: reasonProgressDeadlineExceeded, LastUpdateTime: metav1.NewTime(at)}},
	}
}

type step struct {
	name    string
	d       *appsv1.Deployment
	initial bool
	want    []event.Kind
}

func kinds(evs []event.Event) []event.Kind {
	var out []event.Kind
	for _, ev := range evs {
		out = append(out, ev.Kind)
	}
	return out
}

func runSteps(t *testing.T, steps []step) []event.Event {
	t.Helper()
	cfg := DefaultConfig()
	tr := newTracker(&cfg.Environment)
	var all []event.Event
	for i, s := range steps {
		evs := tr.observe(compact(s.d, &cfg), s.initial, now0.Add(time.Duration(i)*time.Minute))
		assert.Equal(t, s.want, kinds(evs), "step %d: %s", i, s.name)
		all = append(all, evs...)
	}
	return all
}

func with(d *appsv1.Deployment, f func(d *appsv1.Deployment)) *appsv1.Deployment {
	c := d.DeepCopy()
	f(c)
	return c
}

func TestTrackerRollouts(t *testing.T) {
	v1 := fakeDeployment("api", "registry.local/api:1.0", 1)
	v2pending := with(fakeDeployment("api", "registry.local/api:2.0", 2), func(d *appsv1.Deployment) { d.Status = progressing(2) })
	v2done := fakeDeployment("api", "registry.local/api:2.0", 2)
	v2failed := with(v2pending, func(d *appsv1.Deployment) { d.Status = deadlineExceeded(2, now0) })
	v1back := fakeDeployment("api", "registry.local/api:1.0", 3)
	v1backPending := with(v1back, func(d *appsv1.Deployment) { d.Status = progressing(3) })
	scaled := with(fakeDeployment("api", "registry.local/api:1.0", 2), func(d *appsv1.Deployment) {
		n := int32(5)
		d.Spec.Replicas = &n
		d.Status = complete(2, 5)
	})

	tests := []struct {
		name  string
		steps []step
	}{
		{"existing deployment at start counts nothing", []step{
			{"initial list", v1, true, nil},
			{"resync", v1, false, nil},
		}},
		{"image update is one successful deployment", []step{
			{"initial list", v1, true, nil},
			{"new template", v2pending, false, []event.Kind{event.DeploymentStarted}},
			{"still progressing", v2pending, false, nil},
			{"complete", v2done, false, []event.Kind{event.DeploymentSucceeded}},
			{"seen again", v2done, false, nil},
		}},
		{"progress deadline exceeded is a failure", []step{
			{"initial list", v1, true, nil},
			{"new template", v2pending, false, []event.Kind{event.DeploymentStarted}},
			{"deadline", v2failed, false, []event.Kind{event.DeploymentFailed}},
			{"seen again", v2failed, false, nil},
		}},
		{"rollback to an earlier template", []step{
			{"initial list", v1, true, nil},
			{"new template", v2done, false, []event.Kind{event.DeploymentStarted, event.DeploymentSucceeded}},
			{"undo", v1backPending, false, []event.Kind{event.DeploymentRolledBack}},
			{"undo completes", v1back, false, []event.Kind{event.DeploymentSucceeded}},
		}},
		{"scale only counts nothing", []step{
			{"initial list", v1, true, nil},
			{"scaled", scaled, false, nil},
		}},
		{"created while watching is a deployment", []step{
			{"created", with(v1, func(d *appsv1.Deployment) { d.Status = appsv1.DeploymentStatus{} }), false, []event.Kind{event.DeploymentStarted}},
			{"available", v1, false, []event.Kind{event.DeploymentSucceeded}},
		}},
		{"rollout unfinished at start is counted when it finishes", []step{
			{"initial list", v2pending, true, nil},
			{"complete", v2done, false, []event.Kind{event.DeploymentSucceeded}},
		}},
		{"rollout failed before start stays uncounted", []step{
			{"initial list", v2failed, true, nil},
			{"completes later", v2done, false, nil},
		}},
		{"controller not caught up is pending", []step{
			{"initial list", v1, true, nil},
			{"new spec, old status", with(v2done, func(d *appsv1.Deployment) { d.Status = complete(1, 2) }), false, []event.Kind{event.DeploymentStarted}},
			{"caught up", v2done, false, []event.Kind{event.DeploymentSucceeded}},
		}},
		{"failed rollout that completes later reports success for recovery", []step{
			{"initial list", v1, true, nil},
			{"new template", v2pending, false, []event.Kind{event.DeploymentStarted}},
			{"deadline", v2failed, false, []event.Kind{event.DeploymentFailed}},
			{"completes", v2done, false, []event.Kind{event.DeploymentSucceeded}},
		}},
		{"kubectl rollout restart is not a deployment", []step{
			{"initial list", v1, true, nil},
			{"restart", with(fakeDeployment("api", "registry.local/api:1.0", 2), func(d *appsv1.Deployment) {
				d.Spec.Template.Annotations = map[string]string{restartedAtAnnotation: "2026-11-02T09:00:00Z"}
			}), false, nil},
		}},
		{"re-created deployment is new", []step{
			{"initial list", v1, true, nil},
			{"re-created", with(v1, func(d *appsv1.Deployment) { d.UID = "other"; d.Status = progressing(1) }), false, []event.Kind{event.DeploymentStarted}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, tt.steps) })
	}
}

func TestTrackerEventContents(t *testing.T) {
	v1 := fakeDeployment("api", "registry.local/api:1.0", 1)
	v2 := with(fakeDeployment("api", "registry.local/api:2.0", 2), func(d *appsv1.Deployment) {
		d.Annotations = map[string]string{"dora.otelcol.dev/commit-sha": "ABCDEF1234567", "dora.otelcol.dev/commit-time": "2026-11-02T08:00:00Z"}
		d.Status = progressing(2)
	})
	v2failed := with(v2, func(d *appsv1.Deployment) { d.Status = deadlineExceeded(2, now0.Add(90*time.Second)) })
	v3 := fakeDeployment("api", "registry.local/api:1.0", 3)
	evs := runSteps(t, []step{
		{"initial list", v1, true, nil},
		{"v2 starts", v2, false, []event.Kind{event.DeploymentStarted}},
		{"v2 fails", v2failed, false, []event.Kind{event.DeploymentFailed}},
		{"rollback", v3, false, []event.Kind{event.DeploymentRolledBack, event.DeploymentSucceeded}},
	})
	require.Len(t, evs, 4)
	started, failed, rolledBack, succeeded := evs[0], evs[1], evs[2], evs[3]

	svc := event.Service{Namespace: "shop", Name: "api", Environment: "production"}
	for _, ev := range evs {
		assert.Equal(t, svc, ev.Service)
		assert.Equal(t, event.SourceKubernetes, ev.Source)
	}
	assert.Equal(t, "shop/api/uid-name@2", started.DeploymentID)
	assert.Equal(t, started.DeploymentID, failed.DeploymentID)
	assert.Equal(t, "abcdef1234567", failed.Revision)
	assert.Equal(t, time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC), failed.CommitTime)
	assert.Equal(t, reasonProgressDeadlineExceeded, failed.Reason)
	assert.Equal(t, now0.Add(90*time.Second), failed.Time, "failure time from the Progressing condition")
	assert.Equal(t, now0.Add(time.Minute), started.Time, "start time from the observation")

	assert.Equal(t, "shop/api/uid-name@3", rolledBack.DeploymentID)
	assert.Equal(t, started.DeploymentID, rolledBack.PreviousDeploymentID)
	assert.Equal(t, rolledBack.DeploymentID, succeeded.DeploymentID)
	assert.NotEqual(t, failed.ID, succeeded.ID, "event ids are unique per rollout and kind")
}

func TestEnvironmentMapping(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Environment.Namespaces = []NamespaceRule{
		{Pattern: "*-staging", Environment: "staging"},
		{Pattern: "dev-?", Environment: "development"},
	}
	assert.Equal(t, "staging", cfg.Environment.environmentFor("shop-staging", ""))
	assert.Equal(t, "development", cfg.Environment.environmentFor("dev-1", ""))
	assert.Equal(t, "production", cfg.Environment.environmentFor("shop", ""))
	assert.Equal(t, "qa", cfg.Environment.environmentFor("shop-staging", "qa"), "the Deployment's own key wins")

	d := with(fakeDeployment("api", "registry.local/api:1.0", 1), func(d *appsv1.Deployment) {
		d.Spec.Template.Labels[DefaultEnvironmentKey] = "canary"
	})
	assert.Equal(t, "canary", compact(d, &cfg).Environment)
}
