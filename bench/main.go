// Command wafbench is wafcanary's side-by-side benchmark (make bench). It
// starts, on loopback, an upstream application and every target in front of
// it: wafcanary in split mode with shadow at 0% and at 100%, a bare Coraza
// proxy (stock, and with wafcanary's RE2 @rx), a plain Go reverse proxy and nginx with ModSecurity v3. It then
// drives them in turn with wrk over one request mix, in interleaved rounds
// so machine drift hits every target alike, and prints throughput, latency,
// CPU per request and memory with ratios to the references.
//
//	wafbench run -bin DIR [-rounds 3] [-duration 7s] ...
//	wafbench upstream -listen ADDR
//	wafbench proxy -mode plain|coraza|coraza-tuned -listen ADDR -upstream URL
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: wafbench run|upstream|proxy [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runCmd(ctx, args)
	case "upstream":
		err = upstreamCmd(ctx, args)
	case "proxy":
		err = proxyCmd(ctx, args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wafbench:", err)
		os.Exit(1)
	}
}

func upstreamCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	fs.Parse(args)
	return serve(ctx, *listen, upstreamHandler())
}

func proxyCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	upstream := fs.String("upstream", "", "upstream URL")
	mode := fs.String("mode", "plain", "plain (no WAF), coraza (stock Coraza middleware, CRS baseline) or coraza-tuned (the same with wafcanary's RE2 @rx)")
	fs.Parse(args)
	var h http.Handler
	var err error
	switch *mode {
	case "plain":
		h, err = reverseProxy(*upstream)
	case "coraza":
		h, err = bareCorazaHandler(*upstream, false)
	case "coraza-tuned":
		h, err = bareCorazaHandler(*upstream, true)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		return err
	}
	return serve(ctx, *listen, h)
}

func serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
