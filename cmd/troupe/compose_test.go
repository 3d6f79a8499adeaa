package main

import (
	"bufio"
	"context"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/telemetry/clickhouse"
)

// The deployment files live at the repository root; these tests check that the
// references inside them are real, since nothing here can run Docker.
const (
	composeRepoRoot = "../.."
	composeAPIKeys  = "sk-test=admin"
)

// The compose profiles: one for the Milvus stack, one for ClickHouse
// (traces), one for Kafka (knowledge kept in sync with a topic).
const (
	composeMilvusProfile     = "milvus"
	composeClickHouseProfile = "clickhouse"
	composeKafkaProfile      = "kafka"
)

// composeReplicas are the Troupe services: two replicas of one definition
// behind the load balancer composeLB.
var composeReplicas = []string{"troupe-1", "troupe-2"}

const composeLB = "lb"

// composeProfileServices lists the services each profile enables; the rest
// (the replicas, the load balancer and postgres) run without any.
var composeProfileServices = map[string][]string{
	composeMilvusProfile:     {"etcd", "milvus", "minio"},
	composeClickHouseProfile: {"clickhouse"},
	composeKafkaProfile:      {"kafka"},
}

// loadComposeProject loads docker-compose.yml as `docker compose` would, with
// schema validation and consistency checks on, interpolating from env only and
// with the given profiles active (as --profile does).
func loadComposeProject(t *testing.T, env map[string]string, profiles ...string) (*types.Project, error) {
	t.Helper()
	root, err := filepath.Abs(composeRepoRoot)
	require.NoError(t, err)
	details := types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		// The loader writes into the environment it is given (the project
		// name): each load gets its own copy, as parallel subtests share env.
		Environment: maps.Clone(env),
	}
	return loader.LoadWithContext(context.Background(), details, loader.WithProfiles(profiles))
}

func TestComposeFile(t *testing.T) {
	t.Parallel()

	t.Run("requires TROUPE_API_KEYS", func(t *testing.T) {
		t.Parallel()
		const msg = "required variable TROUPE_API_KEYS is missing a value: set TROUPE_API_KEYS, e.g. sk-admin-0123456789abcdef=admin (keys are 16+ characters)"
		for name, env := range map[string]map[string]string{
			"unset": {},
			"empty": {"TROUPE_API_KEYS": ""},
		} {
			_, err := loadComposeProject(t, env)
			require.Error(t, err, name)
			var missing *template.MissingRequiredError
			require.ErrorAs(t, err, &missing, name)
			require.Equal(t, "TROUPE_API_KEYS", missing.Variable, name)
			require.ErrorContains(t, err, msg, name)
		}
	})

	// The ClickHouse TROUPE_TRACES value the comments in the file suggest,
	// interpolated as compose does when it reads it from .env.
	tracesExample := composeTracesExample(t)
	withTraces := func(env map[string]string) map[string]string {
		v, err := template.Substitute(tracesExample, func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		})
		require.NoError(t, err, "TROUPE_TRACES example %q", tracesExample)
		env["TROUPE_TRACES"] = v
		return env
	}

	for name, env := range map[string]map[string]string{
		"defaults":          {"TROUPE_API_KEYS": composeAPIKeys},
		"custom password":   {"TROUPE_API_KEYS": composeAPIKeys, "POSTGRES_PASSWORD": "s3cret-Pass_1"},
		"custom minio":      {"TROUPE_API_KEYS": composeAPIKeys, "MINIO_ACCESS_KEY": "troupe-minio", "MINIO_SECRET_KEY": "s3cret-minio-key"},
		"external milvus":   {"TROUPE_API_KEYS": composeAPIKeys, "TROUPE_MILVUS_ADDRESS": "vectors.internal:19531"},
		"traces off":        {"TROUPE_API_KEYS": composeAPIKeys, "TROUPE_TRACES": "off"},
		"external kafka":    {"TROUPE_API_KEYS": composeAPIKeys, "TROUPE_KAFKA_BROKERS": "broker-1.internal:9094"},
		"clickhouse traces": withTraces(map[string]string{"TROUPE_API_KEYS": composeAPIKeys}),
		"clickhouse traces, custom password": withTraces(map[string]string{
			"TROUPE_API_KEYS": composeAPIKeys, "CLICKHOUSE_PASSWORD": "s3cret-CH_pass1",
		}),
	} {
		for _, profiles := range [][]string{nil, {composeMilvusProfile}, {composeClickHouseProfile}, {composeKafkaProfile},
			{composeMilvusProfile, composeClickHouseProfile, composeKafkaProfile}} {
			label := name
			if len(profiles) > 0 {
				label += " with profile " + strings.Join(profiles, ",")
			}
			t.Run(label, func(t *testing.T) {
				t.Parallel()
				p, err := loadComposeProject(t, env, profiles...)
				require.NoError(t, err)
				checkComposeProject(t, p, env)
				checkComposeProfiles(t, p, profiles)
				checkComposeMilvus(t, p, env, slices.Contains(profiles, composeMilvusProfile))
				checkComposeClickHouse(t, p, env, slices.Contains(profiles, composeClickHouseProfile))
				checkComposeKafka(t, p, env, slices.Contains(profiles, composeKafkaProfile))
			})
		}
	}
}

// composeTracesExample returns the TROUPE_TRACES=clickhouse://... value that
// the comments in docker-compose.yml give (uninterpolated); every such comment
// must give the same one.
func composeTracesExample(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(composeRepoRoot, "docker-compose.yml"))
	require.NoError(t, err)
	matches := regexp.MustCompile(`(?m)^\s*#\s*TROUPE_TRACES=(clickhouse://\S+)\s*$`).FindAllStringSubmatch(string(data), -1)
	require.NotEmpty(t, matches, "docker-compose.yml shows no TROUPE_TRACES=clickhouse://... value")
	for _, m := range matches[1:] {
		require.Equal(t, matches[0][1], m[1], "the TROUPE_TRACES examples disagree")
	}
	return matches[0][1]
}

// checkComposeProfiles checks that troupe and postgres run with any profiles
// and every other service exactly with its own profile.
func checkComposeProfiles(t *testing.T, p *types.Project, profiles []string) {
	wantActive := append([]string{"postgres", composeLB}, composeReplicas...)
	var wantDisabled []string
	for profile, services := range composeProfileServices {
		if slices.Contains(profiles, profile) {
			wantActive = append(wantActive, services...)
		} else {
			wantDisabled = append(wantDisabled, services...)
		}
		for _, name := range services {
			s, ok := p.AllServices()[name]
			require.True(t, ok, "service %s is missing", name)
			require.Equal(t, []string{profile}, s.Profiles, "%s runs only with --profile %s", name, profile)
		}
	}
	slices.Sort(wantActive)
	slices.Sort(wantDisabled)
	active := p.ServiceNames()
	slices.Sort(active)
	require.Equal(t, wantActive, active, "services with profiles %v", profiles)
	require.Equal(t, wantDisabled, slices.Sorted(maps.Keys(p.DisabledServices)), "disabled services with profiles %v", profiles)
}

func checkComposeProject(t *testing.T, p *types.Project, env map[string]string) {
	require.Equal(t, "troupe", p.Name)
	for _, name := range composeReplicas {
		checkComposeReplica(t, p, env, name)
	}
	checkComposeLB(t, p)
}

// checkComposeReplica checks one Troupe replica: built from this repository,
// on the postgres service, with the spec folder mounted.
func checkComposeReplica(t *testing.T, p *types.Project, env map[string]string, name string) {
	troupe, err := p.GetService(name)
	require.NoError(t, err)
	pg, err := p.GetService("postgres")
	require.NoError(t, err)

	// Every dependency names a service, and waits for the ones with a
	// healthcheck to be healthy rather than merely started.
	for _, s := range p.Services {
		for dep, cfg := range s.DependsOn {
			target, ok := p.Services[dep]
			require.True(t, ok, "%s depends on unknown service %q", s.Name, dep)
			if target.HealthCheck != nil && !target.HealthCheck.Disable {
				require.Equal(t, types.ServiceConditionHealthy, cfg.Condition, "%s -> %s", s.Name, dep)
			}
		}
	}
	// Named volumes are declared at the top level, also by services whose
	// profile is not active.
	for _, s := range p.AllServices() {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source != "" {
				require.Contains(t, p.Volumes, v.Source, "%s uses undeclared volume %q", s.Name, v.Source)
			}
		}
	}
	// The default services run without any profile.
	require.Empty(t, troupe.Profiles, "troupe must start with a plain `docker compose up`")
	require.Empty(t, pg.Profiles, "postgres must start with a plain `docker compose up`")
	require.Contains(t, troupe.DependsOn, "postgres")
	require.Equal(t, types.ServiceConditionHealthy, troupe.DependsOn["postgres"].Condition)

	// The troupe service is built from this repository's Dockerfile.
	root, err := filepath.Abs(composeRepoRoot)
	require.NoError(t, err)
	require.NotNil(t, troupe.Build)
	require.Equal(t, root, troupe.Build.Context)
	require.FileExists(t, filepath.Join(troupe.Build.Context, troupe.Build.Dockerfile))
	require.Equal(t, "troupe:latest", troupe.Image)

	tenv := composeEnv(t, troupe)
	penv := composeEnv(t, pg)
	require.Equal(t, composeAPIKeys, tenv["TROUPE_API_KEYS"])
	// serve accepts every setting the service passes it, with the defaults
	// the file promises: the DNS-rebinding guard on (no host list opens it)
	// and a week of SQL traces.
	cfg, err := parseServe(nil, func(k string) (string, bool) { v, ok := tenv[k]; return v, ok }, io.Discard)
	require.NoError(t, err)
	require.Empty(t, cfg.allowedHosts)
	require.Equal(t, 7, cfg.traceTTLDays)
	// A stop drains: readiness fails for longer than lb's health checks take
	// to notice, then runs get the shutdown timeout, all before Docker's
	// grace period ends in SIGKILL.
	caddy, err := os.ReadFile(filepath.Join(composeRepoRoot, "Caddyfile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*health_interval\s+(\S+)`).FindSubmatch(caddy)
	require.NotNil(t, m, "the Caddyfile sets no health_interval")
	interval, err := time.ParseDuration(string(m[1]))
	require.NoError(t, err)
	require.Greater(t, cfg.drainDelay, interval, "TROUPE_DRAIN_DELAY must exceed the Caddyfile's health_interval")
	require.NotNil(t, troupe.StopGracePeriod, "without stop_grace_period Docker kills a replica 10s into its shutdown")
	require.Greater(t, time.Duration(*troupe.StopGracePeriod), cfg.drainDelay+cfg.shutdownTimeout)

	// TROUPE_DB points at the postgres service with its credentials.
	u, err := url.Parse(tenv["TROUPE_DB"])
	require.NoError(t, err)
	require.Equal(t, "postgres", u.Scheme)
	host := u.Hostname()
	require.True(t, host == pg.Name || host == pg.Hostname, "TROUPE_DB host %q is not the postgres service", host)
	require.Equal(t, "5432", u.Port())
	require.Equal(t, penv["POSTGRES_USER"], u.User.Username())
	password, _ := u.User.Password()
	require.Equal(t, penv["POSTGRES_PASSWORD"], password)
	if want, ok := env["POSTGRES_PASSWORD"]; ok {
		require.Equal(t, want, password)
	}
	require.Equal(t, "/"+penv["POSTGRES_DB"], u.Path)
	require.Empty(t, pg.Ports, "postgres is not published by default")

	// postgres has a real readiness check.
	require.NotNil(t, pg.HealthCheck)
	require.False(t, pg.HealthCheck.Disable)
	require.NotEmpty(t, pg.HealthCheck.Test)
	require.Contains(t, []string{"CMD", "CMD-SHELL"}, pg.HealthCheck.Test[0])
	require.Contains(t, strings.Join(pg.HealthCheck.Test[1:], " "), "pg_isready")
	// Its data survives `docker compose down` in a declared named volume.
	require.True(t, slices.ContainsFunc(pg.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == "/var/lib/postgresql/data"
	}), "postgres data is not on a named volume")

	// agents.d is bind-mounted read-only from the repository at TROUPE_DIR.
	var specs *types.ServiceVolumeConfig
	for i, v := range troupe.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == tenv["TROUPE_DIR"] {
			specs = &troupe.Volumes[i]
		}
	}
	require.NotNil(t, specs, "no bind mount at TROUPE_DIR %q", tenv["TROUPE_DIR"])
	require.True(t, specs.ReadOnly)
	require.Equal(t, filepath.Join(root, "agents.d"), specs.Source)
	require.DirExists(t, specs.Source)

	// The server listens on all interfaces, where the load balancer reaches
	// it (which is why API keys are required rather than --insecure); only
	// the load balancer is published.
	addrHost, _, err := net.SplitHostPort(tenv["TROUPE_ADDR"])
	require.NoError(t, err)
	require.Contains(t, []string{"", "0.0.0.0", "::"}, addrHost, "a loopback TROUPE_ADDR is unreachable from the load balancer")
	require.NotContains(t, tenv, "TROUPE_INSECURE")
	require.Empty(t, troupe.Ports, "%s is reached through %s", name, composeLB)
	// Replicas differ in nothing but their names: same build, image,
	// environment and mounts (each names itself by host name and pid).
	first, err := p.GetService(composeReplicas[0])
	require.NoError(t, err)
	require.Equal(t, composeEnv(t, first), tenv, "%s and %s have the same environment", name, first.Name)
	require.NotContains(t, tenv, "TROUPE_REPLICA_ID", "a shared replica id would name both replicas alike")
	require.Equal(t, first.Image, troupe.Image)
	require.Equal(t, first.Build, troupe.Build)
	require.Equal(t, first.Volumes, troupe.Volumes)
	require.Equal(t, first.DependsOn, troupe.DependsOn)
}

// checkComposeLB checks the load balancer: Caddy's official image, publishing
// the replicas' port, with a Caddyfile that proxies to both replicas on the
// port they listen on, routes by their readiness probe and streams events
// unbuffered.
func checkComposeLB(t *testing.T, p *types.Project) {
	lb, err := p.GetService(composeLB)
	require.NoError(t, err)
	require.Regexp(t, `^caddy:\d+\.\d+(\.\d+)?-alpine$`, lb.Image, "the official Caddy image, pinned")
	require.Empty(t, lb.Profiles, "the load balancer starts with a plain `docker compose up`")
	first, err := p.GetService(composeReplicas[0])
	require.NoError(t, err)
	_, addrPort, err := net.SplitHostPort(composeEnv(t, first)["TROUPE_ADDR"])
	require.NoError(t, err)
	for _, name := range composeReplicas {
		require.Contains(t, lb.DependsOn, name)
	}

	// The Caddyfile of the repository, mounted where the image reads it.
	root, err := filepath.Abs(composeRepoRoot)
	require.NoError(t, err)
	var caddyfile string
	for _, v := range lb.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == "/etc/caddy/Caddyfile" {
			require.True(t, v.ReadOnly)
			caddyfile = v.Source
		}
	}
	require.Equal(t, filepath.Join(root, "Caddyfile"), caddyfile, "no Caddyfile mounted at /etc/caddy/Caddyfile")
	data, err := os.ReadFile(caddyfile)
	require.NoError(t, err)
	directives := map[string][]string{}
	var site string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if strings.HasPrefix(f[0], ":") && f[len(f)-1] == "{" {
			site = f[0]
		}
		directives[f[0]] = f[1:]
	}
	// It listens on the published port, which reaches the container's.
	require.Equal(t, ":"+addrPort, site, "the Caddyfile's site address")
	require.Len(t, lb.Ports, 1)
	require.Equal(t, addrPort, strconv.FormatUint(uint64(lb.Ports[0].Target), 10), "container port")
	require.Equal(t, addrPort, lb.Ports[0].Published, "published port")
	var upstreams []string
	for _, name := range composeReplicas {
		upstreams = append(upstreams, net.JoinHostPort(name, addrPort))
	}
	require.Equal(t, append(upstreams, "{"), directives["reverse_proxy"], "reverse_proxy names every replica on TROUPE_ADDR's port")
	require.Equal(t, []string{"/health/ready"}, directives["health_uri"], "routes by the readiness probe")
	require.Equal(t, []string{"-1"}, directives["flush_interval"], "server-sent events pass unbuffered")
}

// checkComposeMilvus checks the Milvus standalone stack (etcd, MinIO, Milvus),
// which only runs with the milvus profile, and troupe's address for it.
func checkComposeMilvus(t *testing.T, p *types.Project, env map[string]string, enabled bool) {
	// Without the profile the Milvus services are defined but disabled (see
	// checkComposeProfiles); with it, they run.
	all := p.AllServices()
	for _, name := range composeProfileServices[composeMilvusProfile] {
		_, active := p.Services[name]
		require.Equal(t, enabled, active, "%s active", name)
		s, ok := all[name]
		require.True(t, ok, "service %s is missing", name)
		require.Equal(t, []string{composeMilvusProfile}, s.Profiles, "%s runs only with --profile %s", name, composeMilvusProfile)
		require.Empty(t, s.Ports, "%s is not published by default", name)
		require.NotNil(t, s.HealthCheck, "%s has no healthcheck", name)
		require.False(t, s.HealthCheck.Disable, name)
		require.GreaterOrEqual(t, len(s.HealthCheck.Test), 2, name)
		require.Equal(t, "CMD", s.HealthCheck.Test[0], "%s: healthcheck in exec form", name)
	}
	etcd, minio, milvus := all["etcd"], all["minio"], all["milvus"]
	etcdEnv, minioEnv, milvusEnv := composeEnv(t, etcd), composeEnv(t, minio), composeEnv(t, milvus)

	// Pinned images: etcd 3.5, a MinIO release, Milvus 2.4.
	require.Regexp(t, `^quay\.io/coreos/etcd:v3\.5\.\d+$`, etcd.Image)
	require.Regexp(t, `^minio/minio:RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$`, minio.Image)
	require.Regexp(t, `^milvusdb/milvus:v2\.4\.\d+$`, milvus.Image)

	// etcd: compaction and quota set as Milvus documents, a client listener on
	// all interfaces, data in a named volume, a real readiness check.
	for _, k := range []string{"ETCD_AUTO_COMPACTION_MODE", "ETCD_AUTO_COMPACTION_RETENTION", "ETCD_QUOTA_BACKEND_BYTES", "ETCD_SNAPSHOT_COUNT"} {
		require.NotEmpty(t, etcdEnv[k], "etcd: %s", k)
	}
	require.NotEmpty(t, etcd.Command)
	require.Equal(t, "etcd", etcd.Command[0])
	listen, err := url.Parse(composeFlag(t, etcd.Command, "listen-client-urls"))
	require.NoError(t, err)
	require.Contains(t, []string{"", "0.0.0.0", "::"}, listen.Hostname(), "etcd must listen beyond loopback for milvus to reach it")
	etcdPort := listen.Port()
	require.NotEmpty(t, etcdPort)
	requireNamedVolumeAt(t, p, etcd, composeFlag(t, etcd.Command, "data-dir"))
	require.Equal(t, []string{"etcdctl", "endpoint", "health"}, []string(etcd.HealthCheck.Test[1:]))

	// MinIO: credentials from the environment with defaults, the data path
	// of its command on a named volume, a liveness probe on its API port.
	require.Equal(t, []string{"minio", "server", "/minio_data", "--console-address", ":9001"}, []string(minio.Command))
	requireNamedVolumeAt(t, p, minio, minio.Command[2])
	for k, def := range map[string]string{"MINIO_ACCESS_KEY": "minioadmin", "MINIO_SECRET_KEY": "minioadmin"} {
		want := def
		if v, ok := env[k]; ok {
			want = v
		}
		require.Equal(t, want, minioEnv[k], "minio: %s", k)
	}
	require.Equal(t, "curl", minio.HealthCheck.Test[1])
	live, err := url.Parse(minio.HealthCheck.Test[len(minio.HealthCheck.Test)-1])
	require.NoError(t, err)
	require.Equal(t, "/minio/health/live", live.Path)
	minioPort := live.Port()
	require.Equal(t, "9000", minioPort, "MinIO's API port (its command sets no --address)")

	// Milvus: standalone mode, after etcd and MinIO are healthy, pointed at
	// them by service name and port, with MinIO's credentials.
	require.Equal(t, []string{"milvus", "run", "standalone"}, []string(milvus.Command))
	for _, dep := range []string{"etcd", "minio"} {
		cfg, ok := milvus.DependsOn[dep]
		require.True(t, ok, "milvus does not depend on %s", dep)
		require.Equal(t, types.ServiceConditionHealthy, cfg.Condition, "milvus -> %s", dep)
		require.True(t, cfg.Required, "milvus -> %s", dep)
	}
	endpoints := strings.Split(milvusEnv["ETCD_ENDPOINTS"], ",")
	require.NotEmpty(t, endpoints)
	for _, ep := range endpoints {
		requireServiceAddr(t, ep, etcd, etcdPort, "ETCD_ENDPOINTS")
	}
	requireServiceAddr(t, milvusEnv["MINIO_ADDRESS"], minio, minioPort, "MINIO_ADDRESS")
	require.Equal(t, minioEnv["MINIO_ACCESS_KEY"], milvusEnv["MINIO_ACCESS_KEY_ID"], "milvus and minio disagree on the access key")
	require.Equal(t, minioEnv["MINIO_SECRET_KEY"], milvusEnv["MINIO_SECRET_ACCESS_KEY"], "milvus and minio disagree on the secret key")
	requireNamedVolumeAt(t, p, milvus, "/var/lib/milvus")
	require.Equal(t, []string{"curl", "-f", "http://localhost:9091/healthz"}, []string(milvus.HealthCheck.Test[1:]))
	require.NotNil(t, milvus.HealthCheck.StartPeriod, "milvus needs a start period")

	// troupe knows where Milvus is, with or without the profile: the milvus
	// service on its gRPC port unless TROUPE_MILVUS_ADDRESS overrides it. It
	// does not depend on milvus, which would break a plain `docker compose up`.
	for _, name := range composeReplicas {
		troupe := all[name]
		tenv := composeEnv(t, troupe)
		if want, ok := env["TROUPE_MILVUS_ADDRESS"]; ok {
			require.Equal(t, want, tenv["TROUPE_MILVUS_ADDRESS"])
		} else {
			requireServiceAddr(t, tenv["TROUPE_MILVUS_ADDRESS"], milvus, "19530", "TROUPE_MILVUS_ADDRESS")
		}
		require.NotContains(t, troupe.DependsOn, "milvus")
	}
}

// checkComposeKafka checks the Kafka broker, which only runs with the kafka
// profile: the official image as one KRaft node, advertising the address
// troupe is given, its data on a named volume.
func checkComposeKafka(t *testing.T, p *types.Project, env map[string]string, enabled bool) {
	all := p.AllServices()
	k, ok := all["kafka"]
	require.True(t, ok, "service kafka is missing")
	_, active := p.Services["kafka"]
	require.Equal(t, enabled, active, "kafka active")
	require.Equal(t, []string{composeKafkaProfile}, k.Profiles)
	require.Regexp(t, `^apache/kafka:\d+\.\d+\.\d+$`, k.Image, "the official image, pinned")
	require.Empty(t, k.Ports, "kafka is not published by default")
	kenv := composeEnv(t, k)
	require.Equal(t, "broker,controller", kenv["KAFKA_PROCESS_ROLES"])
	require.Equal(t, "1@localhost:9093", kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"], "one node votes for itself on the controller listener")
	require.Contains(t, kenv["KAFKA_LISTENERS"], "CONTROLLER://:9093")
	require.Equal(t, "CONTROLLER", kenv["KAFKA_CONTROLLER_LISTENER_NAMES"])
	require.Equal(t, "1", kenv["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"], "one node cannot hold more replicas of the offsets topic")
	require.Equal(t, "true", kenv["KAFKA_AUTO_CREATE_TOPICS_ENABLE"], "dead-letter topics are created on first use")
	advertised, err := url.Parse(kenv["KAFKA_ADVERTISED_LISTENERS"])
	require.NoError(t, err)
	require.Equal(t, "plaintext", advertised.Scheme) // url.Parse lowers the listener name
	requireServiceAddr(t, advertised.Host, k, "9092", "KAFKA_ADVERTISED_LISTENERS")
	require.Contains(t, kenv["KAFKA_LISTENERS"], "PLAINTEXT://:9092")
	requireNamedVolumeAt(t, p, k, kenv["KAFKA_LOG_DIRS"])
	require.NotNil(t, k.HealthCheck)
	require.Equal(t, "CMD-SHELL", k.HealthCheck.Test[0])
	require.Contains(t, k.HealthCheck.Test[1], "--bootstrap-server localhost:9092")

	// troupe is told where the brokers are, with or without the profile,
	// and does not depend on kafka (a plain `docker compose up` works).
	for _, name := range composeReplicas {
		troupe := all[name]
		tenv := composeEnv(t, troupe)
		if want, ok := env["TROUPE_KAFKA_BROKERS"]; ok {
			require.Equal(t, want, tenv["TROUPE_KAFKA_BROKERS"])
		} else {
			requireServiceAddr(t, tenv["TROUPE_KAFKA_BROKERS"], k, "9092", "TROUPE_KAFKA_BROKERS")
		}
		require.NotContains(t, troupe.DependsOn, "kafka")
	}
}

// checkComposeClickHouse checks the ClickHouse service for traces, which only
// runs with the clickhouse profile, and troupe's TROUPE_TRACES for it.
func checkComposeClickHouse(t *testing.T, p *types.Project, env map[string]string, enabled bool) {
	all := p.AllServices()
	chs, ok := all["clickhouse"]
	require.True(t, ok, "service clickhouse is missing")
	_, active := p.Services["clickhouse"]
	require.Equal(t, enabled, active, "clickhouse active")
	require.Equal(t, []string{composeClickHouseProfile}, chs.Profiles)
	require.Empty(t, chs.Ports, "clickhouse is not published by default")

	// The official image, pinned to an exact release (four-part version) of an
	// LTS line (YY.3 or YY.8), 24.8 or newer.
	m := regexp.MustCompile(`^clickhouse/clickhouse-server:(\d+)\.(\d+)\.\d+\.\d+(-alpine)?$`).FindStringSubmatch(chs.Image)
	require.NotNil(t, m, "clickhouse image %q is not pinned to an exact version", chs.Image)
	year, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	minor, err := strconv.Atoi(m[2])
	require.NoError(t, err)
	require.Contains(t, []int{3, 8}, minor, "clickhouse %s.%s is not an LTS release", m[1], m[2])
	require.True(t, year > 24 || (year == 24 && minor >= 8), "clickhouse %s.%s is older than 24.8", m[1], m[2])
	// The image's entrypoint sets up the CLICKHOUSE_* user and database, and
	// the server keeps its default ports (9000 native, 8123 HTTP).
	require.Empty(t, chs.Entrypoint)
	require.Empty(t, chs.Command)

	// Data on a declared named volume; open files raised as ClickHouse asks.
	requireNamedVolumeAt(t, p, chs, "/var/lib/clickhouse")
	nofile := chs.Ulimits["nofile"]
	require.NotNil(t, nofile, "clickhouse: no nofile ulimit")
	soft, hard := nofile.Soft, nofile.Hard
	if nofile.Single != 0 {
		soft, hard = nofile.Single, nofile.Single
	}
	require.Equal(t, 262144, soft, "clickhouse: nofile soft limit")
	require.Equal(t, 262144, hard, "clickhouse: nofile hard limit")

	// The user, password and database the image creates.
	chEnv := composeEnv(t, chs)
	require.Equal(t, "troupe", chEnv["CLICKHOUSE_DB"])
	require.Equal(t, "troupe", chEnv["CLICKHOUSE_USER"])
	wantPassword := "troupe"
	if v, ok := env["CLICKHOUSE_PASSWORD"]; ok {
		wantPassword = v
	}
	require.Equal(t, wantPassword, chEnv["CLICKHOUSE_PASSWORD"])
	require.Equal(t, "1", chEnv["CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT"])

	// A real readiness check: /ping on the HTTP port, or a query.
	require.NotNil(t, chs.HealthCheck, "clickhouse has no healthcheck")
	require.False(t, chs.HealthCheck.Disable)
	require.GreaterOrEqual(t, len(chs.HealthCheck.Test), 2)
	require.Contains(t, []string{"CMD", "CMD-SHELL"}, chs.HealthCheck.Test[0])
	probe := strings.Join(chs.HealthCheck.Test[1:], " ")
	require.True(t, strings.Contains(probe, ":8123/ping") || strings.Contains(probe, "SELECT 1"), "clickhouse healthcheck %q", probe)
	require.NotNil(t, chs.HealthCheck.StartPeriod, "clickhouse needs a start period")

	// troupe writes traces to its database unless TROUPE_TRACES says
	// otherwise, and does not depend on clickhouse, which would break a plain
	// `docker compose up`.
	for _, name := range composeReplicas[1:] {
		require.Equal(t, composeEnv(t, all[composeReplicas[0]])["TROUPE_TRACES"], composeEnv(t, all[name])["TROUPE_TRACES"])
	}
	for _, name := range composeReplicas {
		require.NotContains(t, all[name].DependsOn, "clickhouse")
	}
	traces := composeEnv(t, all[composeReplicas[0]])["TROUPE_TRACES"]
	if want, ok := env["TROUPE_TRACES"]; ok {
		require.Equal(t, want, traces)
	} else {
		require.Equal(t, "sql", traces)
	}
	if !strings.HasPrefix(traces, "clickhouse://") {
		return
	}
	// The ClickHouse URL names the service on its native port, with the
	// service's user, password and database...
	u, err := url.Parse(traces)
	require.NoError(t, err)
	requireServiceAddr(t, u.Host, chs, "9000", "TROUPE_TRACES")
	require.NotNil(t, u.User, "TROUPE_TRACES has no user")
	require.Equal(t, chEnv["CLICKHOUSE_USER"], u.User.Username())
	password, ok := u.User.Password()
	require.True(t, ok, "TROUPE_TRACES has no password")
	require.Equal(t, chEnv["CLICKHOUSE_PASSWORD"], password)
	require.Equal(t, "/"+chEnv["CLICKHOUSE_DB"], u.Path)
	// ...and troupe reads it that way.
	opts, err := clickhouse.ParseDSN(traces)
	require.NoError(t, err)
	require.Equal(t, net.JoinHostPort(chs.Name, "9000"), opts.Addr)
	require.Equal(t, chEnv["CLICKHOUSE_USER"], opts.Username)
	require.Equal(t, chEnv["CLICKHOUSE_PASSWORD"], opts.Password)
	require.Equal(t, chEnv["CLICKHOUSE_DB"], opts.Database)
}

// composeFlag returns the value of -name or --name in a command, given as
// -name=value or -name value.
func composeFlag(t *testing.T, cmd types.ShellCommand, name string) string {
	t.Helper()
	for i, arg := range cmd {
		flag := strings.TrimLeft(arg, "-")
		if flag == arg {
			continue
		}
		if v, ok := strings.CutPrefix(flag, name+"="); ok {
			return v
		}
		if flag == name && i+1 < len(cmd) {
			return cmd[i+1]
		}
	}
	require.Failf(t, "flag not found", "no -%s in %q", name, cmd)
	return ""
}

// requireServiceAddr checks that addr is host:port of service s on port.
func requireServiceAddr(t *testing.T, addr string, s types.ServiceConfig, port, what string) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	require.NoError(t, err, "%s %q", what, addr)
	require.True(t, host == s.Name || (s.Hostname != "" && host == s.Hostname), "%s host %q is not the %s service", what, host, s.Name)
	require.Equal(t, port, p, "%s port", what)
}

// requireNamedVolumeAt checks that s mounts a declared named volume at target.
func requireNamedVolumeAt(t *testing.T, p *types.Project, s types.ServiceConfig, target string) {
	t.Helper()
	require.NotEmpty(t, target)
	i := slices.IndexFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == target
	})
	require.GreaterOrEqual(t, i, 0, "%s: %s is not on a named volume", s.Name, target)
	require.Contains(t, p.Volumes, s.Volumes[i].Source, "%s: volume %q is not declared", s.Name, s.Volumes[i].Source)
}

// composeEnv returns a service's environment with every variable set.
func composeEnv(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	out := make(map[string]string, len(s.Environment))
	for k, v := range s.Environment {
		require.NotNil(t, v, "%s: %s has no value", s.Name, k)
		out[k] = *v
	}
	return out
}

// dockerInstr is one Dockerfile instruction with continuations joined.
type dockerInstr struct {
	line  int
	cmd   string   // upper case: FROM, RUN, COPY...
	flags []string // leading --flags
	args  string   // the rest
}

// dockerStage is the instructions from one FROM to the next.
type dockerStage struct {
	name, image string
	instrs      []dockerInstr
}

// parseDockerfile splits a Dockerfile into stages. It understands comments,
// parser directives and line continuations, which is all this repository uses.
func parseDockerfile(t *testing.T, text string) []dockerStage {
	t.Helper()
	var (
		stages  []dockerStage
		buf     strings.Builder
		start   int
		lineNo  int
		pending bool
	)
	flush := func() {
		s := strings.TrimSpace(buf.String())
		buf.Reset()
		pending = false
		if s == "" {
			return
		}
		cmd, rest, _ := strings.Cut(s, " ")
		in := dockerInstr{line: start, cmd: strings.ToUpper(cmd)}
		rest = strings.TrimSpace(rest)
		for strings.HasPrefix(rest, "--") {
			var flag string
			flag, rest, _ = strings.Cut(rest, " ")
			in.flags = append(in.flags, flag)
			rest = strings.TrimSpace(rest)
		}
		in.args = rest
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			require.NotEmpty(t, f, "line %d: FROM without an image", in.line)
			st := dockerStage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			} else {
				require.Len(t, f, 1, "line %d: malformed FROM", in.line)
			}
			stages = append(stages, st)
		}
		require.NotEmpty(t, stages, "line %d: %s before FROM", in.line, in.cmd)
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && !pending) {
			continue // comments (and directives) are dropped, even inside continuations
		}
		if !pending {
			start = lineNo
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			buf.WriteString(cont + " ")
			pending = true
			continue
		}
		buf.WriteString(line)
		flush()
	}
	require.NoError(t, sc.Err())
	require.False(t, pending, "Dockerfile ends inside a continuation")
	require.NotEmpty(t, stages, "no FROM")
	return stages
}

func (in dockerInstr) flag(name string) (string, bool) {
	for _, f := range in.flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// stageEnv returns the value of an ENV key set in a stage (KEY=VALUE form).
func (s dockerStage) env(key string) string {
	val := ""
	for _, in := range s.instrs {
		if in.cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			if k, v, ok := strings.Cut(kv, "="); ok && k == key {
				val = strings.Trim(v, `"`)
			}
		}
	}
	return val
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(composeRepoRoot, "Dockerfile"))
	require.NoError(t, err)
	stages := parseDockerfile(t, string(data))
	require.GreaterOrEqual(t, len(stages), 2, "multi-stage build")

	// Every COPY --from names a stage defined before it.
	defined := map[string]int{}
	for i, st := range stages {
		for _, in := range st.instrs {
			if in.cmd != "COPY" {
				continue
			}
			from, ok := in.flag("from")
			if !ok {
				continue
			}
			j, ok := defined[strings.ToLower(from)]
			require.True(t, ok, "line %d: COPY --from=%s names no earlier stage", in.line, from)
			require.Less(t, j, i)
		}
		if st.name != "" {
			_, dup := defined[strings.ToLower(st.name)]
			require.False(t, dup, "stage %s defined twice", st.name)
			defined[strings.ToLower(st.name)] = i
		}
	}

	// Some builder stage compiles ./cmd/troupe statically and checks agents.d.
	var built, checked bool
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st.instrs {
			if in.cmd != "RUN" {
				continue
			}
			if strings.Contains(in.args, "go build") && strings.Contains(in.args, "./cmd/troupe") {
				built = true
				require.True(t, strings.Contains(in.args, "CGO_ENABLED=0") || st.env("CGO_ENABLED") == "0",
					"line %d: go build without CGO_ENABLED=0", in.line)
				require.Contains(t, in.args, "-trimpath", "line %d", in.line)
			}
			if strings.Contains(in.args, "check agents.d") {
				checked = true
			}
		}
	}
	require.True(t, built, "no stage runs go build ./cmd/troupe")
	require.True(t, checked, "no stage runs troupe check on agents.d")

	// The final stage runs as a non-root user, the binary it starts was copied
	// in, and its paths and port agree with its environment.
	final := stages[len(stages)-1]
	require.True(t, strings.HasPrefix(final.image, "gcr.io/distroless/static"), final.image)
	var user, entrypoint string
	var copied []string
	var exposed []string
	for _, in := range final.instrs {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "COPY":
			f := strings.Fields(in.args)
			copied = append(copied, f[len(f)-1])
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		}
	}
	name, _, _ := strings.Cut(user, ":")
	require.NotEmpty(t, name, "final stage has no USER")
	require.NotContains(t, []string{"root", "0"}, name, "final stage runs as root")
	require.NotEmpty(t, entrypoint)
	require.True(t, slices.ContainsFunc(copied, func(dst string) bool {
		return strings.Contains(entrypoint, `"`+dst+`"`)
	}), "ENTRYPOINT %s does not start a copied binary (copied: %v)", entrypoint, copied)
	require.Contains(t, copied, final.env("TROUPE_DIR"), "TROUPE_DIR is not where agents.d is copied")
	_, port, err := net.SplitHostPort(final.env("TROUPE_ADDR"))
	require.NoError(t, err)
	require.Contains(t, exposed, port)
}

// TestDocumentedKeysAreAccepted checks that every example API key in the
// Dockerfile, the compose file and the README is one the server accepts, so
// copying an example never ends in "key too short" at start-up.
func TestDocumentedKeysAreAccepted(t *testing.T) {
	t.Parallel()
	example := regexp.MustCompile(`TROUPE_API_KEYS[=:]\s*['"]?(?:\$\{TROUPE_API_KEYS:\?[^}]*?e\.g\. )?([^\s'"}]+=[^\s'"}]+)`)
	for _, file := range []string{"Dockerfile", "docker-compose.yml", "README.md"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(composeRepoRoot, file))
			require.NoError(t, err)
			found := example.FindAllSubmatch(data, -1)
			require.NotEmpty(t, found, "no TROUPE_API_KEYS example in %s", file)
			for _, m := range found {
				_, err := auth.ParseKeys(string(m[1]))
				require.NoError(t, err, "%s: example %s", file, m[1])
			}
		})
	}
}
