// Package milvus is a knowledge.VectorStore on Milvus 2.4: one collection per
// knowledge base, holding each chunk with its dense vector (HNSW, inner
// product) and its BM25 sparse vector (SPARSE_INVERTED_INDEX, inner product).
// Vector search is a dense ANN search, keyword search a sparse one, and hybrid
// search both, fused here into the readable score (knowledge.FuseScores).
//
// This is the only package that imports the Milvus SDK.
package milvus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"sync"
	"time"

	grpcretry "github.com/grpc-ecosystem/go-grpc-middleware/retry"
	"github.com/milvus-io/milvus-sdk-go/v2/client"
	"github.com/milvus-io/milvus-sdk-go/v2/entity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/troupehq/troupe/engine/knowledge"
)

// Field names of the collection schema.
const (
	fieldID        = "id"
	fieldDocument  = "document_id"
	fieldKnowledge = "knowledge_id"
	fieldText      = "text"
	fieldMetadata  = "metadata"
	fieldDense     = "dense"
	fieldSparse    = "sparse"
)

// Limits of the schema and of Milvus.
const (
	maxIDLength   = 512   // id, document_id and knowledge_id
	maxTextBytes  = 65535 // Milvus' largest VarChar
	maxDimension  = 32768 // Milvus' largest dense dimension
	maxTopK       = 16384 // Milvus' largest topk
	defaultTopK   = 10
	batchRows     = 256     // rows per Upsert request
	batchBytes    = 8 << 20 // approximate bytes per Upsert request
	hnswM         = 16
	hnswEfBuild   = 200
	hnswMinEf     = 64
	hybridMinPool = 20 // candidates per sub-search of a hybrid search
)

// Defaults of Options.
const (
	DefaultTimeout = 10 * time.Second
	DefaultRetries = 2
)

// Options configure a Store.
type Options struct {
	Address    string // host:port (an https:// address enables TLS)
	Collection string // one collection per knowledge base
	Dimension  int    // dense dimension

	Username, Password, APIKey string // optional credentials

	// Timeout bounds every request to Milvus, retries included: a search,
	// a delete, each upsert batch, and the collection check on first use.
	// Default DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a request failing with a transient gRPC
	// error (Unavailable, DeadlineExceeded) is retried within its Timeout.
	// 0 means DefaultRetries; negative disables retries.
	Retries int
	Logger  *slog.Logger
}

// Store is a knowledge.VectorStore on one Milvus collection. It is safe for
// concurrent use.
//
// New does not wait for Milvus: it checks the options and creates a gRPC
// client that connects in the background. The collection is checked (and
// created with its indexes, then loaded, when missing) on first use, and again
// after a failed check, so a Milvus that is down when the process starts makes
// operations fail with a clear error instead of New, and recovers by itself.
type Store struct {
	opts    Options
	log     *slog.Logger
	client  client.Client
	conn    *grpc.ClientConn
	initSem chan struct{} // one collection check at a time

	mu     sync.Mutex
	ready  bool
	closed bool
}

var _ knowledge.VectorStore = (*Store)(nil)

// ErrClosed is returned by operations on a closed Store.
var ErrClosed = errors.New("milvus store is closed")

var collectionName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,254}$`)

// New returns a Store for opts.Collection on the Milvus at opts.Address.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Address == "" {
		return nil, errors.New("milvus: an address (host:port) is required")
	}
	if !collectionName.MatchString(opts.Collection) {
		return nil, fmt.Errorf("milvus: invalid collection name %q: use letters, digits and underscores, starting with a letter or underscore", opts.Collection)
	}
	if opts.Dimension <= 0 || opts.Dimension > maxDimension {
		return nil, fmt.Errorf("milvus: invalid dimension %d (1 to %d)", opts.Dimension, maxDimension)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	switch {
	case opts.Retries == 0:
		opts.Retries = DefaultRetries
	case opts.Retries < 0:
		opts.Retries = 0
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := client.Config{
		Address:  opts.Address,
		Username: opts.Username,
		Password: opts.Password,
		APIKey:   opts.APIKey,
		// The SDK's Connect handshake leaks the gRPC connection when it fails
		// and, against a server without it, silently disables JSON fields.
		// Nothing here needs it: the first request doubles as the probe.
		DisableConn: true,
		// Without explicit dial options the SDK blocks in NewClient until the
		// server answers (grpc.WithBlock); these are its defaults minus that.
		DialOptions: []grpc.DialOption{
			grpc.WithKeepaliveParams(keepalive.ClientParameters{
				Time:                5 * time.Second,
				Timeout:             10 * time.Second,
				PermitWithoutStream: true,
			}),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  100 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   3 * time.Second,
				},
				MinConnectTimeout: min(opts.Timeout, 20*time.Second),
			}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
			// The SDK retries Unavailable six times with backoffs up to 5s
			// per RPC; the Store retries whole requests itself, within
			// Timeout, so switch that off.
			grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
				return invoker(ctx, method, req, reply, cc, append(callOpts, grpcretry.Disable())...)
			}),
		},
		RetryRateLimit: &client.RetryRateLimitOption{MaxRetry: uint(opts.Retries + 1), MaxBackoff: time.Second},
	}
	c, err := client.NewClient(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("milvus at %s: %w", opts.Address, err)
	}
	s := &Store{
		opts:    opts,
		log:     opts.Logger.With("milvus", opts.Address, "collection", opts.Collection),
		client:  c,
		initSem: make(chan struct{}, 1),
	}
	if gc, ok := c.(*client.GrpcClient); ok {
		s.conn = gc.Conn
	}
	return s, nil
}

// Close releases the connection. Operations after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.client.Close()
}

// ensure returns the client once the collection is known to be usable,
// checking (and creating) it first when needed.
func (s *Store) ensure(ctx context.Context) (client.Client, error) {
	if c, ok, err := s.state(); err != nil || ok {
		return c, err
	}
	select {
	case s.initSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("milvus collection %s: waiting for the collection check: %w", s.opts.Collection, context.Cause(ctx))
	}
	defer func() { <-s.initSem }()
	if c, ok, err := s.state(); err != nil || ok {
		return c, err
	}
	err := s.do(ctx, "checking collection "+s.opts.Collection, func(ctx context.Context) error {
		return s.ensureCollection(ctx)
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	return s.client, nil
}

func (s *Store) state() (client.Client, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false, ErrClosed
	}
	return s.client, s.ready, nil
}

// errSchema marks a collection that exists with an incompatible schema; it is
// not retried.
var errSchema = errors.New("incompatible collection")

// ensureCollection creates the collection and its indexes when missing, and
// loads it.
func (s *Store) ensureCollection(ctx context.Context) error {
	c, name := s.client, s.opts.Collection
	has, err := c.HasCollection(ctx, name)
	if err != nil {
		return err
	}
	if !has {
		err := c.CreateCollection(ctx, s.schema(), 1, client.WithConsistencyLevel(entity.ClStrong))
		if err != nil {
			// Another process may have created it meanwhile.
			if has, herr := c.HasCollection(ctx, name); herr != nil || !has {
				return fmt.Errorf("creating the collection: %w", err)
			}
		} else {
			s.log.Info("created milvus collection", "dimension", s.opts.Dimension)
		}
	}
	coll, err := c.DescribeCollection(ctx, name)
	if err != nil {
		return err
	}
	if err := s.checkSchema(coll.Schema); err != nil {
		return err
	}
	// GetLoadState ignores the response status; anything but Loaded just
	// means "make sure the indexes exist and load".
	if st, err := c.GetLoadState(ctx, name, nil); err == nil && st == entity.LoadStateLoaded {
		return nil
	} else if err != nil {
		return err
	}
	dense, err := entity.NewIndexHNSW(entity.IP, hnswM, hnswEfBuild)
	if err != nil {
		return err
	}
	sparse, err := entity.NewIndexSparseInverted(entity.IP, 0)
	if err != nil {
		return err
	}
	for _, ix := range []struct {
		field string
		index entity.Index
	}{{fieldDense, dense}, {fieldSparse, sparse}} {
		// DescribeIndex fails when there is none; any other failure
		// resurfaces from CreateIndex.
		if existing, err := c.DescribeIndex(ctx, name, ix.field); err == nil && len(existing) > 0 {
			continue
		}
		if err := c.CreateIndex(ctx, name, ix.field, ix.index, false); err != nil {
			return fmt.Errorf("creating the %s index: %w", ix.field, err)
		}
		s.log.Info("created milvus index", "field", ix.field, "type", ix.index.IndexType())
	}
	if err := c.LoadCollection(ctx, name, false); err != nil {
		return fmt.Errorf("loading the collection: %w", err)
	}
	return nil
}

func (s *Store) schema() *entity.Schema {
	varchar := func(name string, maxLen int64) *entity.Field {
		return entity.NewField().WithName(name).WithDataType(entity.FieldTypeVarChar).WithMaxLength(maxLen)
	}
	return entity.NewSchema().
		WithName(s.opts.Collection).
		WithDescription("troupe knowledge chunks").
		WithAutoID(false).
		WithDynamicFieldEnabled(false).
		WithField(varchar(fieldID, maxIDLength).WithIsPrimaryKey(true)).
		WithField(varchar(fieldDocument, maxIDLength)).
		WithField(varchar(fieldKnowledge, maxIDLength)).
		WithField(varchar(fieldText, maxTextBytes)).
		WithField(entity.NewField().WithName(fieldMetadata).WithDataType(entity.FieldTypeJSON)).
		WithField(entity.NewField().WithName(fieldDense).WithDataType(entity.FieldTypeFloatVector).WithDim(int64(s.opts.Dimension))).
		WithField(entity.NewField().WithName(fieldSparse).WithDataType(entity.FieldTypeSparseVector))
}

// checkSchema verifies that an existing collection has the fields this store
// reads and writes.
func (s *Store) checkSchema(sch *entity.Schema) error {
	want := map[string]entity.FieldType{
		fieldID: entity.FieldTypeVarChar, fieldDocument: entity.FieldTypeVarChar, fieldKnowledge: entity.FieldTypeVarChar,
		fieldText: entity.FieldTypeVarChar, fieldMetadata: entity.FieldTypeJSON,
		fieldDense: entity.FieldTypeFloatVector, fieldSparse: entity.FieldTypeSparseVector,
	}
	found := map[string]*entity.Field{}
	for _, f := range sch.Fields {
		found[f.Name] = f
	}
	for name, typ := range want {
		f, ok := found[name]
		switch {
		case !ok:
			return fmt.Errorf("%w: collection %s has no field %q; it was not created by troupe, use another collection", errSchema, s.opts.Collection, name)
		case f.DataType != typ:
			return fmt.Errorf("%w: field %q of collection %s is %s, not %s", errSchema, name, s.opts.Collection, f.DataType.Name(), typ.Name())
		}
	}
	if !found[fieldID].PrimaryKey {
		return fmt.Errorf("%w: field %q of collection %s is not the primary key", errSchema, fieldID, s.opts.Collection)
	}
	if dim := found[fieldDense].TypeParams[entity.TypeParamDim]; dim != fmt.Sprint(s.opts.Dimension) {
		return fmt.Errorf("%w: collection %s holds %s-dimensional vectors but the embedder produces %d; use another collection (or drop this one)", errSchema, s.opts.Collection, dim, s.opts.Dimension)
	}
	return nil
}

// dropCollection drops the collection (tests clean up with it).
func (s *Store) dropCollection(ctx context.Context) error {
	if _, _, err := s.state(); err != nil {
		return err
	}
	err := s.do(ctx, "dropping collection "+s.opts.Collection, func(ctx context.Context) error {
		return s.client.DropCollection(ctx, s.opts.Collection)
	})
	s.mu.Lock()
	s.ready = false
	s.mu.Unlock()
	return err
}

// do runs one request under Timeout, retrying transient failures, and
// explains the error.
func (s *Store) do(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	parent := ctx
	ctx, cancel := context.WithTimeoutCause(ctx, s.opts.Timeout, fmt.Errorf("no answer within %s", s.opts.Timeout))
	defer cancel()
	var err error
	attempts := 0
	for {
		attempts++
		err = fn(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, errSchema) || !transient(err) || attempts > s.opts.Retries || ctx.Err() != nil {
			break
		}
		wait := min(100*time.Millisecond<<(attempts-1), time.Second)
		s.log.Warn("milvus request failed, retrying", "request", what, "attempt", attempts, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if ctx.Err() != nil {
			break
		}
	}
	return s.explain(parent, ctx, what, attempts, err)
}

// transient reports whether err is worth retrying.
func transient(err error) bool {
	switch grpcCode(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// grpcCode is the gRPC status code in err's chain (the SDK returns some errors
// wrapped), or codes.Unknown.
func grpcCode(err error) codes.Code {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Code()
	}
	return codes.Unknown
}

// explain turns a failed request into an error that says what happened.
func (s *Store) explain(parent, ctx context.Context, what string, attempts int, err error) error {
	addr := s.opts.Address
	tries := ""
	if attempts > 1 {
		tries = fmt.Sprintf(" (%d attempts)", attempts)
	}
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("milvus at %s: %s: %w", addr, what, context.Cause(parent))
	}
	code := grpcCode(err)
	timedOut := ctx.Err() != nil || code == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)
	switch {
	case s.isClosed():
		return fmt.Errorf("%w: %s: %w", ErrClosed, what, err)
	case code == codes.Unavailable || (timedOut && !s.connected()):
		if timedOut {
			return fmt.Errorf("milvus at %s is unreachable: %s: no answer within %s%s: %w", addr, what, s.opts.Timeout, tries, err)
		}
		return fmt.Errorf("milvus at %s is unreachable: %s%s: %w", addr, what, tries, err)
	case timedOut:
		return fmt.Errorf("milvus at %s: %s: timed out after %s%s: %w", addr, what, s.opts.Timeout, tries, err)
	case code == codes.Unauthenticated || code == codes.PermissionDenied:
		return fmt.Errorf("milvus at %s rejected the credentials: %s: %w", addr, what, err)
	}
	return fmt.Errorf("milvus at %s: %s: %w", addr, what, err)
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// connected reports whether the gRPC connection is up.
func (s *Store) connected() bool {
	return s.conn != nil && s.conn.GetState() == connectivity.Ready
}
