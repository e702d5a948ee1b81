package faultproxy

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
)

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintln(c, sc.Text())
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader, line string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintln(c, line); err != nil {
		return "", err
	}
	return r.ReadString('\n')
}

func TestCutDropsAndRefusesThenRestore(t *testing.T) {
	port, err := localcluster.FreePort()
	require.NoError(t, err)
	p, err := Start(fmt.Sprintf("127.0.0.1:%d", port), echoServer(t))
	require.NoError(t, err)
	defer p.Close()

	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	got, err := roundTrip(c, r, "hello")
	require.NoError(t, err)
	assert.Equal(t, "hello\n", got)

	p.Cut()
	_, err = roundTrip(c, r, "after cut")
	assert.Error(t, err, "an open connection is dropped")
	_, err = net.DialTimeout("tcp", p.Addr(), time.Second)
	assert.Error(t, err, "new connections are refused")

	require.NoError(t, p.Restore())
	c2, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c2.Close()
	got, err = roundTrip(c2, bufio.NewReader(c2), "again")
	require.NoError(t, err)
	assert.Equal(t, "again\n", got)
	assert.EqualValues(t, 2, p.Accepted())
}

func TestFreezeHoldsBytesUntilDropped(t *testing.T) {
	port, err := localcluster.FreePort()
	require.NoError(t, err)
	p, err := Start(fmt.Sprintf("127.0.0.1:%d", port), echoServer(t))
	require.NoError(t, err)
	defer p.Close()

	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	_, err = roundTrip(c, r, "before")
	require.NoError(t, err)

	p.Freeze()
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = fmt.Fprintln(c, "frozen")
	require.NoError(t, err, "the connection stays open")
	_, err = r.ReadString('\n')
	require.Error(t, err, "nothing comes back while frozen")

	p.DropConnections()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = r.ReadString('\n')
	assert.Error(t, err, "the frozen connection is dropped, what it held with it")

	c2, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err, "still listening")
	defer c2.Close()
	got, err := roundTrip(c2, bufio.NewReader(c2), "after")
	require.NoError(t, err)
	assert.Equal(t, "after\n", got)
}
