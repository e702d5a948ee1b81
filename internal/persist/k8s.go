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
// rewritten (in the same Batch) only when that list changes. A receiver
// watching several clusters keeps each cluster's under
// v1/k8s/clusters/<name>/ (ClusterStore), so that two clusters'
// Deployments of the same namespace and name never share a key.
const (
	KeyK8sMeta          = "v1/k8s/meta"
	k8sDeploymentPrefix = "v1/k8s/deployments/"
	k8sClustersPrefix   = "v1/k8s/clusters/"
)

// K8sDeploymentKey is the key of a tracked Deployment.
func K8sDeploymentKey(namespace, name string) string {
	return k8sDeploymentPrefix + namespace + "/" + name
}

// k8sKeys are the keys of one tracker's state.
type k8sKeys struct {
	meta, deployments string
}

func clusterKeys(cluster string) k8sKeys {
	if cluster == "" {
		return k8sKeys{meta: KeyK8sMeta, deployments: k8sDeploymentPrefix}
	}
	p := k8sClustersPrefix + cluster + "/"
	return k8sKeys{meta: p + "meta", deployments: p + "deployments/"}
}

// K8sClusterDeploymentKey is the key of a tracked Deployment of the named
// cluster (ClusterStore); the single-cluster form's for "".
func K8sClusterDeploymentKey(cluster, namespace, name string) string {
	return clusterKeys(cluster).deployments + namespace + "/" + name
}

// ClusterStore is the k8s.Store of the named cluster's tracker, in s. The
// single-cluster form's (the keys above) for "". Cluster names hold no "/"
// (k8s.ValidateClusterName).
func (s *Store) ClusterStore(cluster string) k8s.Store {
	return clusterStore{s: s, keys: clusterKeys(cluster)}
}

type clusterStore struct {
	s    *Store
	keys k8sKeys
}

func (c clusterStore) LoadDeployments(ctx context.Context) (k8s.SavedState, error) {
	return c.s.loadDeployments(ctx, c.keys)
}

func (c clusterStore) SaveDeployments(ctx context.Context, since time.Time, put []k8s.DeploymentState, deleted []types.NamespacedName) error {
	return c.s.saveDeployments(ctx, c.keys, since, put, deleted)
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

// k8sIndex is what the store last saved of one tracker (Store.k8s, by
// meta key): the Deployments and the tracking start.
type k8sIndex struct {
	names map[string]bool
	since time.Time
}

// LoadDeployments implements k8s.Store, for the single-cluster form.
func (s *Store) LoadDeployments(ctx context.Context) (k8s.SavedState, error) {
	return s.loadDeployments(ctx, clusterKeys(""))
}

func (s *Store) loadDeployments(ctx context.Context, keys k8sKeys) (k8s.SavedState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := &k8sIndex{names: map[string]bool{}}
	s.k8s[keys.meta] = idx
	b, err := s.client.Get(ctx, keys.meta)
	if err != nil {
		return k8s.SavedState{}, fmt.Errorf("reading %s: %w", keys.meta, err)
	}
	if b == nil {
		return k8s.SavedState{}, nil
	}
	var meta k8sMetaJSON
	if err := json.Unmarshal(b, &meta); err != nil {
		return k8s.SavedState{}, fmt.Errorf("reading %s: %w", keys.meta, err)
	}
	if err := checkVersion(keys.meta, meta.Version, k8sVersion); err != nil {
		return k8s.SavedState{}, err
	}
	out := k8s.SavedState{Since: meta.Since}
	idx.since = meta.Since
	for chunk := range slices.Chunk(meta.Deployments, getBatch) {
		ops := make([]*storage.Operation, len(chunk))
		for i, n := range chunk {
			ops[i] = storage.GetOperation(keys.deployments + n)
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
			idx.names[chunk[i]] = true
			out.Deployments = append(out.Deployments, k8s.DeploymentState{
				Namespace: d.Namespace, Name: d.Name, UID: types.UID(d.UID), Generation: d.Generation,
				TemplateHash: d.TemplateHash, History: d.History,
				Rollout: k8s.RolloutState{ID: d.Rollout.ID, Started: d.Rollout.Started, Phase: d.Rollout.Phase, Preexisting: d.Rollout.Preexisting},
			})
		}
	}
	return out, nil
}

// SaveDeployments implements k8s.Store, for the single-cluster form: one
// Batch writes the changed Deployments, deletes the deleted ones and, when
// the list of Deployments or since changed, the meta key.
func (s *Store) SaveDeployments(ctx context.Context, since time.Time, put []k8s.DeploymentState, deleted []types.NamespacedName) error {
	return s.saveDeployments(ctx, clusterKeys(""), since, put, deleted)
}

func (s *Store) saveDeployments(ctx context.Context, keys k8sKeys, since time.Time, put []k8s.DeploymentState, deleted []types.NamespacedName) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.k8s[keys.meta]
	if idx == nil {
		idx = &k8sIndex{names: map[string]bool{}}
		s.k8s[keys.meta] = idx
	}
	names := maps.Clone(idx.names)
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
		ops = append(ops, storage.SetOperation(keys.deployments+d.Namespace+"/"+d.Name, b))
		names[d.Namespace+"/"+d.Name] = true
	}
	for _, k := range deleted {
		ops = append(ops, storage.DeleteOperation(keys.deployments+k.Namespace+"/"+k.Name))
		delete(names, k.Namespace+"/"+k.Name)
	}
	if !maps.Equal(names, idx.names) || !since.Equal(idx.since) {
		meta := k8sMetaJSON{Version: k8sVersion, Since: since.UTC(), Deployments: slices.Sorted(maps.Keys(names))}
		b, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		ops = append(ops, storage.SetOperation(keys.meta, b))
	}
	if len(ops) == 0 {
		return nil
	}
	if err := s.client.Batch(ctx, ops...); err != nil {
		return err
	}
	idx.names, idx.since, s.formatSaved = names, since, true
	return nil
}
