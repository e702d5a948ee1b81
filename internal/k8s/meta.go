package k8s

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Meta is the object metadata a stored Deployment keeps: what the informer
// needs for its keys and namespace index (Namespace, Name) and what the
// tracker reads. It implements metav1.Object so that client-go's key
// functions and indexers take it; the other fields read as empty and their
// setters do nothing. A full metav1.ObjectMeta, even empty, would cost
// about 250 bytes per Deployment.
type Meta struct {
	Name      string
	Namespace string
	UID       types.UID
	// Generation is metadata.generation, bumped by every spec change.
	Generation int64
	// CreationTimestamp tells a Deployment created while the receiver was
	// down from one that existed before (with storage).
	CreationTimestamp metav1.Time
}

var _ metav1.Object = (*Meta)(nil)

func (m *Meta) GetNamespace() string                          { return m.Namespace }
func (m *Meta) SetNamespace(namespace string)                 { m.Namespace = namespace }
func (m *Meta) GetName() string                               { return m.Name }
func (m *Meta) SetName(name string)                           { m.Name = name }
func (m *Meta) GetGenerateName() string                       { return "" }
func (m *Meta) SetGenerateName(string)                        {}
func (m *Meta) GetUID() types.UID                             { return m.UID }
func (m *Meta) SetUID(uid types.UID)                          { m.UID = uid }
func (m *Meta) GetResourceVersion() string                    { return "" }
func (m *Meta) SetResourceVersion(string)                     {}
func (m *Meta) GetGeneration() int64                          { return m.Generation }
func (m *Meta) SetGeneration(generation int64)                { m.Generation = generation }
func (m *Meta) GetSelfLink() string                           { return "" }
func (m *Meta) SetSelfLink(string)                            {}
func (m *Meta) GetCreationTimestamp() metav1.Time             { return m.CreationTimestamp }
func (m *Meta) SetCreationTimestamp(t metav1.Time)            { m.CreationTimestamp = t }
func (m *Meta) GetDeletionTimestamp() *metav1.Time            { return nil }
func (m *Meta) SetDeletionTimestamp(*metav1.Time)             {}
func (m *Meta) GetDeletionGracePeriodSeconds() *int64         { return nil }
func (m *Meta) SetDeletionGracePeriodSeconds(*int64)          {}
func (m *Meta) GetLabels() map[string]string                  { return nil }
func (m *Meta) SetLabels(map[string]string)                   {}
func (m *Meta) GetAnnotations() map[string]string             { return nil }
func (m *Meta) SetAnnotations(map[string]string)              {}
func (m *Meta) GetFinalizers() []string                       { return nil }
func (m *Meta) SetFinalizers([]string)                        {}
func (m *Meta) GetOwnerReferences() []metav1.OwnerReference   { return nil }
func (m *Meta) SetOwnerReferences([]metav1.OwnerReference)    {}
func (m *Meta) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }
func (m *Meta) SetManagedFields([]metav1.ManagedFieldsEntry)  {}
