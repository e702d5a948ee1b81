package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.opentelemetry.io/collector/extension/xextension/storage"
	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-dora/dorareceiver/internal/k8s"
)

// Keys of the Kubernetes rollout tracker's state. The storage interface
// cannot list keys, so the meta key lists the saved Deployments; it is
// rewritten (in the same Batch) only when that list changes.
const (
	KeyK8sMeta          = "v1/k8s/meta"
	k8sDeploymentPrefix = "v1/k8s/deployments/"
)

// K8sDeploymentKey is the key of a tracked Deployment.
func K8sDeploymentKey(namespace, name string) string {
	return k8sDeploymentPrefix + namespace + "/" + name
}

// k8sVersion is the codec version of the tracker's values.
const k8sVersion = 1

type k8sMetaJSON struct {
	Version int       `json:"version"`
	Since   time.Time `json:"since"`
	// Deployments are "namespace/name", sorted.
	Deployments []string `json:"deployments"`
}

type k8sDeploymentJSON struct {
	Version      int            `json:"version"`
	Namespace    string         `json:"namespace"`
	Name         string         `json:"name"`
	UID          string         `json:"uid"`
	Generation   int64          `json:"generation"`
	TemplateHash uint64         `json:"template_hash"`
	History      []uint64       `json:"history,omitempty"`
	Rollout      k8sRolloutJSON `json:"rollout"`
}

type k8sRolloutJSON struct {
	ID          string    `json:"id"`
	Started     time.Time `json:"started"`
	Phase       string    `json:"phase"`
	Preexisting bool      `json:"preexisting,omitempty"`
}

// k8sIndex is what the store last saved of the tracker: the Deployments
// and the tracking start.
type k8sIndex struct {
	names map[string]bool
	since time.Time
}

// LoadDeployments implements k8s.Store.
func (s *Store) LoadDeployments(ctx context.Context) (k8s.SavedState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.k8s = k8sIndex{names: map[string]bool{}}
	b, err := s.client.Get(ctx, KeyK8sMeta)
	if err != nil {
		return k8s.SavedState{}, fmt.Errorf("reading %s: %w", KeyK8sMeta, err)
	}
	if b == nil {
		return k8s.SavedState{}, nil
	}
	var meta k8sMetaJSON
	if err := json.Unmarshal(b, &meta); err != nil {
		return k8s.SavedState{}, fmt.Errorf("reading %s: %w", KeyK8sMeta, err)
	}
	if err := checkVersion(KeyK8sMeta, meta.Version, k8sVersion); err != nil {
		return k8s.SavedState{}, err
	}
	out := k8s.SavedState{Since: meta.Since}
	s.k8s.since = meta.Since
	for chunk := range slices.Chunk(meta.Deployments, getBatch) {
		ops := make([]*storage.Operation, len(chunk))
		for i, n := range chunk {
			ops[i] = storage.GetOperation(k8sDeploymentPrefix + n)
		}
		if err := s.client.Batch(ctx, ops...); err != nil {
			return k8s.SavedState{}, fmt.Errorf("reading the rollout state: %w", err)
		}
		for i, op := range ops {
			if op.Value == nil {
				// Listed but absent: not tracked; the next save fixes the
				// list.
				continue
			}
			var d k8sDeploymentJSON
			if err := json.Unmarshal(op.Value, &d); err != nil {
				return k8s.SavedState{}, fmt.Errorf("reading %s: %w", op.Key, err)
			}
			if err := checkVersion(op.Key, d.Version, k8sVersion); err != nil {
				return k8s.SavedState{}, err
			}
			s.k8s.names[chunk[i]] = true
			out.Deployments = append(out.Deployments, k8s.DeploymentState{
				Namespace: d.Namespace, Name: d.Name, UID: types.UID(d.UID), Generation: d.Generation,
				TemplateHash: d.TemplateHash, History: d.History,
				Rollout: k8s.RolloutState{ID: d.Rollout.ID, Started: d.Rollout.Started, Phase: d.Rollout.Phase, Preexisting: d.Rollout.Preexisting},
			})
		}
	}
	return out, nil
}

// SaveDeployments implements k8s.Store: one Batch writes the changed
// Deployments, deletes the deleted ones and, when the list of Deployments
// or since changed, the meta key.
func (s *Store) SaveDeployments(ctx context.Context, since time.Time, put []k8s.DeploymentState, deleted []types.NamespacedName) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.k8s.names == nil {
		s.k8s.names = map[string]bool{}
	}
	names := maps.Clone(s.k8s.names)
	ops := s.formatOp()
	for _, d := range put {
		b, err := json.Marshal(k8sDeploymentJSON{
			Version: k8sVersion, Namespace: d.Namespace, Name: d.Name, UID: string(d.UID), Generation: d.Generation,
			TemplateHash: d.TemplateHash, History: d.History,
			Rollout: k8sRolloutJSON{ID: d.Rollout.ID, Started: d.Rollout.Started.UTC(), Phase: d.Rollout.Phase, Preexisting: d.Rollout.Preexisting},
		})
		if err != nil {
			return err
		}
		ops = append(ops, storage.SetOperation(K8sDeploymentKey(d.Namespace, d.Name), b))
		names[d.Namespace+"/"+d.Name] = true
	}
	for _, k := range deleted {
		ops = append(ops, storage.DeleteOperation(K8sDeploymentKey(k.Namespace, k.Name)))
		delete(names, k.Namespace+"/"+k.Name)
	}
	if !maps.Equal(names, s.k8s.names) || !since.Equal(s.k8s.since) {
		meta := k8sMetaJSON{Version: k8sVersion, Since: since.UTC(), Deployments: slices.Sorted(maps.Keys(names))}
		b, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		ops = append(ops, storage.SetOperation(KeyK8sMeta, b))
	}
	if len(ops) == 0 {
		return nil
	}
	if err := s.client.Batch(ctx, ops...); err != nil {
		return err
	}
	s.k8s.names, s.k8s.since, s.formatSaved = names, since, true
	return nil
}
