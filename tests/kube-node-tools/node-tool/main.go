// Command weir-node-tool is the probe the real-node tests run in pods (and scripts/kube-node.sh
// runs on the host) to check what the Weir end-to-end tests rely on: a pod serving TCP, a pod
// reaching it by its Service's DNS name through the ClusterIP, a writable volume, and the API
// server reached with the pod's in-cluster credentials. Every subcommand prints what it saw as
// `key value` lines, which the tests read back from the pod's log, and exits non-zero on failure.
//
//	weir-node-tool serve ADDR              echo every TCP connection's bytes back, forever
//	weir-node-tool dial NAME PORT PAYLOAD  resolve NAME, send PAYLOAD to IP:PORT, print the echo
//	weir-node-tool resolve NAME SERVER     resolve NAME (A records) asking the DNS server SERVER
//	weir-node-tool write PATH CONTENT      write CONTENT to PATH, fsync it and read it back
//	weir-node-tool whoami                  ask the API server who the pod's service account is
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// retryFor bounds how long dial and whoami keep trying: right after a Service is created,
// kube-proxy may not have programmed its rules yet, as a real client would also see.
const retryFor = 60 * time.Second

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "serve":
		err = needArgs(args, 1, func() error { return serve(args[0]) })
	case "dial":
		err = needArgs(args, 3, func() error { return dial(args[0], args[1], args[2]) })
	case "resolve":
		err = needArgs(args, 2, func() error { return resolve(args[0], args[1]) })
	case "write":
		err = needArgs(args, 2, func() error { return write(args[0], args[1]) })
	case "whoami":
		err = needArgs(args, 0, whoami)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "error %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: weir-node-tool serve ADDR | dial NAME PORT PAYLOAD | resolve NAME SERVER | write PATH CONTENT | whoami")
	os.Exit(2)
}

func needArgs(args []string, n int, run func() error) error {
	if len(args) != n {
		usage()
	}
	return run()
}

func serve(addr string) error {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", listener.Addr())
	for {
		conn, err := listener.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer conn.Close()
			_, _ = io.Copy(conn, conn)
		}()
	}
}

// dial resolves name through the pod's resolv.conf (the cluster DNS), connects to the first
// address and checks that payload comes back. Retried until retryFor passes.
func dial(name, port, payload string) error {
	return retry(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		if err != nil {
			return err
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(addrs[0], port), 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(payload)); err != nil {
			return err
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		echoed, err := io.ReadAll(conn)
		if err != nil {
			return err
		}
		if string(echoed) != payload {
			return fmt.Errorf("sent %q, got %q back", payload, echoed)
		}
		fmt.Printf("resolved %s\n", addrs[0])
		fmt.Printf("echoed %s\n", echoed)
		return nil
	})
}

// resolve asks server (HOST:PORT) directly, not the host's resolver: scripts/kube-node.sh uses
// it to check CoreDNS from the host, whose own resolv.conf knows nothing of the cluster.
func resolve(name, server string) error {
	resolver := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, network, server)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := resolver.LookupHost(ctx, name)
	if err != nil {
		return err
	}
	for _, addr := range addrs {
		fmt.Printf("address %s\n", addr)
	}
	return nil
}

func write(path, content string) error {
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := file.WriteString(content); err != nil {
		file.Close()
		return err
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return err
	}
	if err := file.Close(); err != nil {
		return err
	}
	read, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if string(read) != content {
		return fmt.Errorf("wrote %q, read %q back", content, read)
	}
	fmt.Printf("wrote %s\n", read)
	return nil
}

// whoami reaches the API server the way in-cluster clients (the operator's kube-rs among them)
// do: KUBERNETES_SERVICE_HOST/PORT (the `kubernetes` Service's ClusterIP), the mounted CA and
// service-account token, and a SelfSubjectReview, which every authenticated user may create.
func whoami() error {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return errors.New("KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT is not set")
	}
	token, err := os.ReadFile(serviceAccountDir + "/token")
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("no certificate in ca.crt")
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	url := "https://" + net.JoinHostPort(host, port) + "/apis/authentication.k8s.io/v1/selfsubjectreviews"
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	return retry(func() error {
		request, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		request.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
		request.Header.Set("Content-Type", "application/json")
		response, err := client.Do(request)
		if err != nil {
			return err
		}
		defer response.Body.Close()
		answer, err := io.ReadAll(response.Body)
		if err != nil {
			return err
		}
		if response.StatusCode != http.StatusCreated && response.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", response.Status, answer)
		}
		var review struct {
			Status struct {
				UserInfo struct {
					Username string `json:"username"`
				} `json:"userInfo"`
			} `json:"status"`
		}
		if err := json.Unmarshal(answer, &review); err != nil {
			return err
		}
		fmt.Printf("server %s\n", host)
		fmt.Printf("user %s\n", review.Status.UserInfo.Username)
		return nil
	})
}

// retry runs attempt until it succeeds or retryFor has passed, logging each failure.
func retry(attempt func() error) error {
	deadline := time.Now().Add(retryFor)
	for {
		err := attempt()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s: %w", retryFor, err)
		}
		fmt.Fprintf(os.Stderr, "retrying %v\n", err)
		time.Sleep(time.Second)
	}
}
