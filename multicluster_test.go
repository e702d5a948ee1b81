package dorareceiver

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
)

// TestClusterStatus: the component status says which clusters' API
// servers do not answer, and turns OK only once all of them answer again.
func TestClusterStatus(t *testing.T) {
	var got []*componentstatus.Event
	s := newClusterStatus(func(e *componentstatus.Event) { got = append(got, e) })
	last := func() *componentstatus.Event { require.NotEmpty(t, got); return got[len(got)-1] }

	s.failed("us-1", errors.New("connection refused"))
	assert.Equal(t, componentstatus.StatusRecoverableError, last().Status())
	assert.ErrorContains(t, last().Err(), `API server of cluster "us-1" not answering; the other clusters are still watched`)
	assert.ErrorContains(t, last().Err(), `kubernetes::clusters "us-1": connection refused`)

	s.failed("ap-1", errors.New("timeout"))
	assert.ErrorContains(t, last().Err(), `cluster "ap-1", "us-1" not answering`)

	s.recovered("us-1")
	assert.Equal(t, componentstatus.StatusRecoverableError, last().Status(), "ap-1 still fails")
	assert.NotContains(t, last().Err().Error(), "us-1")
	assert.ErrorContains(t, last().Err(), `"ap-1"`)

	s.recovered("ap-1")
	assert.Equal(t, componentstatus.StatusOK, last().Status())

	// The single-cluster form reports the error as it is.
	s.failed("", errors.New("connection refused"))
	assert.Equal(t, "connection refused", last().Err().Error())
	s.recovered("")
	assert.Equal(t, componentstatus.StatusOK, last().Status())
}
