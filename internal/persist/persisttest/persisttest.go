// Package persisttest is an in-memory storage extension for tests: the
// collector's storage.Extension and storage.Client interfaces over a map,
// with atomic batches, failure injection and a count of what was written.
package persisttest

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// ErrClosed is returned by a closed client.
var ErrClosed = errors.New("persisttest: client is closed")

// Extension is an in-memory storage extension. All its clients share one
// map (per component and storage name), which outlives them: a receiver
// started again on the same Extension finds what the previous one saved,
// as with file_storage after a restart.
type Extension struct {
	mu   sync.Mutex
	data map[string]map[string][]byte
	err  error
	// Batches counts successful Batch calls, refused the ones Fail
	// refused.
	batches int
	refused int
	clients []*Client
}

var _ storage.Extension = (*Extension)(nil)

// NewExtension returns an empty Extension.
func NewExtension() *Extension {
	return &Extension{data: map[string]map[string][]byte{}}
}

// Start implements component.Component.
func (*Extension) Start(context.Context, component.Host) error { return nil }

// Shutdown implements component.Component.
func (*Extension) Shutdown(context.Context) error { return nil }

// GetClient implements storage.Extension.
func (x *Extension) GetClient(_ context.Context, kind component.Kind, id component.ID, name string) (storage.Client, error) {
	return x.Client(kind.String() + "/" + id.String() + "/" + name), nil
}

// Client returns a client on the named map.
func (x *Extension) Client(name string) *Client {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.data[name] == nil {
		x.data[name] = map[string][]byte{}
	}
	c := &Client{x: x, name: name}
	x.clients = append(x.clients, c)
	return c
}

// Clients returns the clients handed out so far, oldest first.
func (x *Extension) Clients() []*Client {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.clients)
}

// Fail makes every operation of every client fail with err until Fail(nil).
func (x *Extension) Fail(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.err = err
}

// Batches is the number of successful batches (Get, Set and Delete are
// batches of one).
func (x *Extension) Batches() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.batches
}

// Refused is the number of batches refused with Fail's error: a test
// waits on it to know that a write was attempted (and retried).
func (x *Extension) Refused() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.refused
}

// Client is a storage.Client on one map of an Extension.
type Client struct {
	x      *Extension
	name   string
	mu     sync.Mutex
	closed bool
}

var _ storage.Client = (*Client)(nil)

// Get implements storage.Client.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	op := storage.GetOperation(key)
	err := c.Batch(ctx, op)
	return op.Value, err
}

// Set implements storage.Client.
func (c *Client) Set(ctx context.Context, key string, value []byte) error {
	return c.Batch(ctx, storage.SetOperation(key, value))
}

// Delete implements storage.Client.
func (c *Client) Delete(ctx context.Context, key string) error {
	return c.Batch(ctx, storage.DeleteOperation(key))
}

// Batch implements storage.Client: all operations apply, in order, or none.
func (c *Client) Batch(_ context.Context, ops ...*storage.Operation) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	if c.x.err != nil {
		c.x.refused++
		return c.x.err
	}
	data := c.x.data[c.name]
	// Apply to a copy of what changes, then commit.
	changed := map[string][]byte{}
	get := func(k string) []byte {
		if v, ok := changed[k]; ok {
			return v
		}
		return data[k]
	}
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			op.Value = slices.Clone(get(op.Key))
		case storage.Set:
			changed[op.Key] = slices.Clone(op.Value)
		case storage.Delete:
			changed[op.Key] = nil
		default:
			return errors.New("persisttest: unknown operation type")
		}
	}
	for k, v := range changed {
		if v == nil {
			delete(data, k)
		} else {
			data[k] = v
		}
	}
	c.x.batches++
	return nil
}

// Close implements storage.Client; the data stays in the Extension.
func (c *Client) Close(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// Closed reports whether Close was called.
func (c *Client) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Keys returns the keys held, sorted.
func (c *Client) Keys() []string {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	return slices.Sorted(maps.Keys(c.x.data[c.name]))
}

// Value returns the value of key, nil when absent.
func (c *Client) Value(key string) []byte {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	return slices.Clone(c.x.data[c.name][key])
}

// Size is the total size of the keys and values held, in bytes.
func (c *Client) Size() int {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	n := 0
	for k, v := range c.x.data[c.name] {
		n += len(k) + len(v)
	}
	return n
}

// Dump returns every key and value; the values must be JSON (those of
// internal/persist are).
func (c *Client) Dump() (map[string]json.RawMessage, error) {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	out := map[string]json.RawMessage{}
	for k, v := range c.x.data[c.name] {
		if !json.Valid(v) {
			return nil, errors.New("persisttest: the value of " + k + " is not JSON")
		}
		out[k] = slices.Clone(v)
	}
	return out, nil
}

// Load replaces the client's data with a Dump.
// DumpBytes returns a copy of every key and value of the client, for
// fixtures whose values are not all JSON.
func (c *Client) DumpBytes() map[string][]byte {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range c.x.data[c.name] {
		out[k] = slices.Clone(v)
	}
	return out
}

// LoadBytes replaces the client's data with d (see DumpBytes).
func (c *Client) LoadBytes(d map[string][]byte) {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	data := map[string][]byte{}
	for k, v := range d {
		data[k] = slices.Clone(v)
	}
	c.x.data[c.name] = data
}

func (c *Client) Load(d map[string]json.RawMessage) {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	data := map[string][]byte{}
	for k, v := range d {
		data[k] = slices.Clone([]byte(v))
	}
	c.x.data[c.name] = data
}
