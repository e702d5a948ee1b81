// Package scenario is the scripted delivery history that the end-to-end
// test with a real Prometheus and `make demo` both play: real rollouts on a
// control plane with a fake kubelet, and GitHub push webhooks that give the
// commits their times. The test checks the numbers it produces; the demo
// plays it slowly for a newcomer to watch.
package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Env is where the scenario plays.
type Env struct {
	Client kubernetes.Interface
	// WebhookURL is the dora receiver's webhook server, e.g.
	// http://127.0.0.1:8088.
	WebhookURL   string
	GitHubSecret string
	// SetPodsBecomeReady makes new pods (never) become ready, to provoke a
	// ProgressDeadlineExceeded.
	SetPodsBecomeReady func(bool)
	// Pace is the pause between steps (0 in tests).
	Pace time.Duration
	Logf func(format string, args ...any)
}

// Namespace of the scenario's services.
const Namespace = "shop"

// Commits pushed by the scenario, with how long before their push they
// were made: their lead times are known.
var (
	CommitV2  = Commit{SHA: "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2", Age: 90 * time.Minute}
	CommitV3  = Commit{SHA: "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3", Age: 30 * time.Minute}
	CommitWeb = Commit{SHA: "d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4", Age: 4 * time.Hour}
)

// Commit is one pushed commit.
type Commit struct {
	SHA string
	Age time.Duration
}

// Expected is what the scenario leaves in the metrics, per service.
type Expected struct {
	// Deployments by service and status.
	Deployments map[string]map[string]int
	// Failures by service and reason.
	Failures map[string]map[string]int
	// LeadTimes by service: one per shipped commit, approximate (the
	// rollout takes a moment after the push).
	LeadTimes map[string][]time.Duration
	// Recoveries by service.
	Recoveries map[string]int
}

// Run plays the scenario:
//  1. api is created (image 1.0): its first deployment;
//  2. a commit is pushed and shipped in api 2.0: a deployment with a lead
//     time of about 90 minutes;
//  3. a commit is pushed and shipped in api 3.0, whose pods never become
//     ready: a failed deployment (ProgressDeadlineExceeded);
//  4. api is rolled back to 2.0: a deployment that recovers the service;
//  5. web is created, then ships a commit made 4 hours earlier.
//
// The first deployments of api and web ship revisions that were never
// pushed, so they record no lead time (see METRICS.md); the later ones do.
func Run(ctx context.Context, env Env) (Expected, error) {
	s := &player{env: env}
	if err := s.run(ctx); err != nil {
		return Expected{}, err
	}
	return Expected{
		Deployments: map[string]map[string]int{"api": {"success": 3, "failure": 1}, "web": {"success": 2}},
		Failures:    map[string]map[string]int{"api": {"ProgressDeadlineExceeded": 1}},
		LeadTimes:   map[string][]time.Duration{"api": {CommitV2.Age}, "web": {CommitWeb.Age}},
		Recoveries:  map[string]int{"api": 1},
	}, nil
}

type player struct {
	env Env
}

func (p *player) logf(format string, args ...any) {
	if p.env.Logf != nil {
		p.env.Logf(format, args...)
	}
}

func (p *player) pause(ctx context.Context) error {
	if p.env.Pace <= 0 {
		return nil
	}
	select {
	case <-time.After(p.env.Pace):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *player) run(ctx context.Context) error {
	apps := p.env.Client.AppsV1().Deployments(Namespace)
	if _, err := p.env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}

	p.logf("1. creating %s/api with image 1.0 (its first deployment)", Namespace)
	if _, err := apps.Create(ctx, deployment("api", "registry.local/api:1.0", ""), metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := p.waitRolledOut(ctx, "api"); err != nil {
		return err
	}
	if err := p.pause(ctx); err != nil {
		return err
	}

	p.logf("2. pushing commit %.7s (made %s ago) and shipping it as api 2.0", CommitV2.SHA, CommitV2.Age)
	if err := p.push("acme/api", "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0", CommitV2); err != nil {
		return err
	}
	if err := p.setImage(ctx, "api", "registry.local/api:2.0", CommitV2.SHA, nil); err != nil {
		return err
	}
	if err := p.waitRolledOut(ctx, "api"); err != nil {
		return err
	}
	if err := p.pause(ctx); err != nil {
		return err
	}

	p.logf("3. pushing commit %.7s and shipping api 3.0, whose pods never become ready", CommitV3.SHA)
	if err := p.push("acme/api", CommitV2.SHA, CommitV3); err != nil {
		return err
	}
	p.env.SetPodsBecomeReady(false)
	deadline := int32(3)
	if err := p.setImage(ctx, "api", "registry.local/api:3.0", CommitV3.SHA, func(d *appsv1.Deployment) { d.Spec.ProgressDeadlineSeconds = &deadline }); err != nil {
		return err
	}
	if err := p.waitCondition(ctx, "api", "ProgressDeadlineExceeded"); err != nil {
		return err
	}
	p.logf("   the rollout failed: ProgressDeadlineExceeded")
	if err := p.pause(ctx); err != nil {
		return err
	}

	p.logf("4. rolling api back to 2.0")
	p.env.SetPodsBecomeReady(true)
	if err := p.setImage(ctx, "api", "registry.local/api:2.0", CommitV2.SHA, nil); err != nil {
		return err
	}
	if err := p.waitRolledOut(ctx, "api"); err != nil {
		return err
	}
	if err := p.pause(ctx); err != nil {
		return err
	}

	p.logf("5. creating %s/web, then shipping commit %.7s (made %s ago) as web 1.1", Namespace, CommitWeb.SHA, CommitWeb.Age)
	if _, err := apps.Create(ctx, deployment("web", "registry.local/web:1.0", ""), metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := p.waitRolledOut(ctx, "web"); err != nil {
		return err
	}
	if err := p.push("acme/web", "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0", CommitWeb); err != nil {
		return err
	}
	if err := p.setImage(ctx, "web", "registry.local/web:1.1", CommitWeb.SHA, nil); err != nil {
		return err
	}
	return p.waitRolledOut(ctx, "web")
}

func deployment(name, image, sha string) *appsv1.Deployment {
	replicas := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: name, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: image}}},
			},
		},
	}
	if sha != "" {
		d.Spec.Template.Annotations = map[string]string{"dora.otelcol.dev/commit-sha": sha}
	}
	return d
}

// setImage changes the image and the commit annotation the way a CD
// pipeline would, retrying on conflicts with the controller's writes.
func (p *player) setImage(ctx context.Context, name, image, sha string, mutate func(*appsv1.Deployment)) error {
	apps := p.env.Client.AppsV1().Deployments(Namespace)
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := apps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		d.Spec.Template.Annotations = map[string]string{"dora.otelcol.dev/commit-sha": sha}
		if mutate != nil {
			mutate(d)
		}
		_, err = apps.Update(ctx, d, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
}

func (p *player) waitRolledOut(ctx context.Context, name string) error {
	return p.waitCondition(ctx, name, "NewReplicaSetAvailable")
}

// waitCondition waits until the Deployment's controller has acted on its
// latest spec and its Progressing condition has the given reason.
func (p *player) waitCondition(ctx context.Context, name, reason string) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := p.env.Client.AppsV1().Deployments(Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if d.Status.ObservedGeneration < d.Generation {
			return false, nil
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Reason == reason {
				return reason != "NewReplicaSetAvailable" || d.Status.AvailableReplicas == *d.Spec.Replicas, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%s/%s never reached %s: %w", Namespace, name, reason, err)
	}
	return nil
}

// push sends a GitHub push webhook with one commit.
func (p *player) push(repo, before string, c Commit) error {
	commit := map[string]any{
		"id": c.SHA, "tree_id": c.SHA, "distinct": true, "message": "Change " + c.SHA[:7],
		"timestamp": time.Now().Add(-c.Age).UTC().Format(time.RFC3339),
		"url":       "https://github.com/" + repo + "/commit/" + c.SHA,
		"author":    map[string]any{"name": "Dev", "email": "dev@example.com", "username": "dev"},
		"committer": map[string]any{"name": "Dev", "email": "dev@example.com", "username": "dev"},
		"added":     []string{}, "removed": []string{}, "modified": []string{"main.go"},
	}
	payload := map[string]any{
		"ref": "refs/heads/main", "before": before, "after": c.SHA,
		"created": false, "deleted": false, "forced": false,
		"repository":  map[string]any{"full_name": repo, "name": repo[len("acme/"):], "default_branch": "main"},
		"commits":     []any{commit},
		"head_commit": commit,
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, p.env.WebhookURL+"/webhooks/github", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "push-"+c.SHA[:12])
	req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.SignHMACSHA256(p.env.GitHubSecret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("push webhook answered %d: %s", resp.StatusCode, answer)
	}
	return nil
}
