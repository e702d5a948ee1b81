// Package faultproxy is a TCP proxy for fault tests: it sits between a
// client and a real server (the receiver and kube-apiserver, for example)
// and can cut the network between them, as a partition or a failed load
// balancer would, without touching either side.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards every TCP connection made to Addr to the target address.
// Bytes pass through untouched, so TLS ends at the target.
type Proxy struct {
	addr   string
	target string

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	// thawed is closed while bytes flow; Freeze replaces it with an open
	// channel, on which the copy loops wait.
	thawed chan struct{}

	accepted atomic.Int64
}

// Start listens on listenAddr (host:port; use a fixed port, so that Restore
// can listen on it again) and forwards to target.
func Start(listenAddr, target string) (*Proxy, error) {
	p := &Proxy{addr: listenAddr, target: target, conns: map[net.Conn]struct{}{}, thawed: make(chan struct{})}
	close(p.thawed)
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p.serve(ln)
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.addr }

// Accepted is the number of connections accepted so far: a client that
// reconnected after Restore shows here.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Cut closes every open connection (the client sees its streams end) and
// stops listening, so that new connections are refused, until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.dropLocked()
}

// Freeze stops forwarding bytes, both ways, on every connection, as a
// network that silently loses packets would: the connections stay open,
// and what either side sends meanwhile is held, then thrown away by
// DropConnections or Cut. A watch frozen this way misses the events sent
// meanwhile without knowing it.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
		p.thawed = make(chan struct{})
	default:
	}
}

// DropConnections closes every open connection, with what Freeze held,
// and forwards again: the client reconnects at once.
func (p *Proxy) DropConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropLocked()
}

// dropLocked closes the connections, then thaws, so that the copy loops
// held by Freeze wake up to closed connections; p.mu is held.
func (p *Proxy) dropLocked() {
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	select {
	case <-p.thawed:
	default:
		close(p.thawed)
	}
}

// flowing returns the channel that is closed while bytes may flow.
func (p *Proxy) flowing() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.thawed
}

// Restore listens again on the same address. The port was ours a moment
// ago, but another process may bind it in between: Restore retries for a
// few seconds before giving up.
func (p *Proxy) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faultproxy: closed")
	}
	if p.ln != nil {
		return nil
	}
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return nil
		}
	}
	return fmt.Errorf("faultproxy: listening again on %s: %w", p.addr, err)
}

// Close cuts everything and waits for the proxy's goroutines.
func (p *Proxy) Close() error {
	p.Cut()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// serve accepts on ln until it is closed; p.mu is held or p is new.
func (p *Proxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(ln, c)
			}()
		}
	}()
}

// forward copies both ways between c and a new connection to the target
// until either side ends or Cut closes them.
func (p *Proxy) forward(ln net.Listener, c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln != ln {
		// Cut while dialing.
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				<-p.flowing()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		// One direction ended: end both, as a dropped connection does.
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}
