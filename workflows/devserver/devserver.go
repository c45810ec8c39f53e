// Package devserver runs an embedded Temporal server (SQLite persistence) inside the
// tessera process. It is the only package that imports go.temporal.io/server, so the
// heavy server code links into the binary once and into no test binary but its own.
package devserver

import (
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

// Options configures the embedded server.
type Options struct {
	// DBPath is the SQLite file; it is created with the Temporal schema when missing.
	DBPath string
	// Listen is the frontend gRPC address, e.g. "127.0.0.1:7233"; port 0 picks a free one.
	Listen string
	// Namespaces are registered before the server starts.
	Namespaces []string
	// LogLevel is the server's own log level (debug, info, warn, error).
	LogLevel string
}

// Server is a running embedded Temporal server.
type Server struct {
	srv  temporal.Server
	addr string
}

// Addr is the frontend host:port clients dial.
func (s *Server) Addr() string { return s.addr }

// Stop shuts the server down and waits for it.
func (s *Server) Stop() error { return s.srv.Stop() }

// Start creates the schema when the database file is new, registers the namespaces and
// starts all Temporal services in-process. It returns once the frontend is listening.
func Start(opts Options) (*Server, error) {
	host, portStr, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("temporal listen address %q: %w", opts.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("temporal listen port %q: %w", portStr, err)
	}
	if port == 0 {
		if port, err = freePort(host); err != nil {
			return nil, err
		}
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "error"
	}
	if err := os.MkdirAll(filepath.Dir(opts.DBPath), 0o755); err != nil {
		return nil, fmt.Errorf("temporal data dir: %w", err)
	}

	sqlCfg := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: opts.DBPath,
		ConnectAttributes: map[string]string{
			"mode": "rwc",
			// WAL keeps readers and the single writer from blocking each other.
			"_journal_mode": "wal",
			"_synchronous":  "2",
		},
	}
	if _, err := os.Stat(opts.DBPath); os.IsNotExist(err) {
		if err := sqlite.SetupSchema(sqlCfg); err != nil {
			return nil, fmt.Errorf("create temporal schema in %s: %w", opts.DBPath, err)
		}
	}

	if err := forgetMembers(opts.DBPath); err != nil {
		return nil, err
	}
	cfg, err := serverConfig(sqlCfg, host, port)
	if err != nil {
		return nil, err
	}
	var namespaces []*sqlite.NamespaceConfig
	for _, ns := range opts.Namespaces {
		nsCfg, err := sqlite.NewNamespaceConfig(cfg.ClusterMetadata.CurrentClusterName, ns, false, nil)
		if err != nil {
			return nil, fmt.Errorf("namespace %q: %w", ns, err)
		}
		namespaces = append(namespaces, nsCfg)
	}
	if err := sqlite.CreateNamespaces(sqlCfg, namespaces...); err != nil {
		return nil, fmt.Errorf("register namespaces: %w", err)
	}

	logger := log.NewZapLogger(log.BuildZapLogger(log.Config{Stdout: true, Level: opts.LogLevel, Format: "json"}))
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return nil, err
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return nil, err
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			// Search attributes registered at runtime become visible at once.
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("create temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start temporal server: %w", err)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if err := waitListening(addr, 30*time.Second); err != nil {
		_ = srv.Stop()
		return nil, err
	}
	return &Server{srv: srv, addr: addr}, nil
}

// forgetMembers removes the cluster membership rows a previous process left behind.
// This server is the file's only user (the data dir is locked), so every row is stale;
// a killed process's rows still look alive for a while, and ringpop then spends its
// whole join budget trying to reach their dead ports and exits the process.
func forgetMembers(dbPath string) error {
	if _, err := os.Stat(dbPath); err != nil {
		return nil // a new file has no members yet
	}
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", dbPath, err)
	}
	defer db.Close()
	if _, err := db.Exec("DELETE FROM cluster_membership"); err != nil {
		return fmt.Errorf("forget stale temporal cluster members in %s: %w", dbPath, err)
	}
	return nil
}

func serverConfig(sqlCfg *config.SQL, host string, frontendPort int) (*config.Config, error) {
	// Internal services (history, matching, worker) and membership get free ports on
	// loopback; only the frontend listens on the requested address.
	var ports []int
	for range 8 {
		p, err := freePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	service := func(grpc, membership int, bindIP string) config.Service {
		rpc := config.RPC{GRPCPort: grpc, MembershipPort: membership, BindOnLocalHost: bindIP == ""}
		if bindIP != "" {
			rpc.BindOnIP = bindIP
		}
		return config.Service{RPC: rpc}
	}
	frontendAddr := net.JoinHostPort(host, strconv.Itoa(frontendPort))
	return &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: "127.0.0.1"},
			PProf:      config.PProf{Port: ports[0]},
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        "active",
			CurrentClusterName:       "active",
			ClusterInformation: map[string]cluster.ClusterInformation{
				"active": {Enabled: true, InitialFailoverVersion: 1, RPCAddress: frontendAddr},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			"frontend": service(frontendPort, ports[1], host),
			"history":  service(ports[2], ports[3], ""),
			"matching": service(ports[4], ports[5], ""),
			"worker":   service(ports[6], ports[7], ""),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		// The server's own system workers dial the frontend through this address.
		PublicClient: config.PublicClient{HostPort: frontendAddr},
	}, nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("temporal frontend did not listen on %s within %s: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
