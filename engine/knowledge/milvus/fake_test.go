package milvus

// An in-process fake of the Milvus 2.4 gRPC service, with real semantics for
// what the adapter uses: collections with their schemas, vector indexes and
// load state, upsert by primary key with Milvus' validation, delete and
// search filtered by boolean expressions (parsed, not pattern-matched),
// inner-product scoring of dense and sparse vectors, and hybrid search fused
// with RRF. Anything else is Unimplemented.

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang/protobuf/proto"
	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Milvus error codes (merr) used by the fake.
const (
	codeCollectionNotExists = 100
	codeCollectionNotLoaded = 101
	codeIndexNotFound       = 700
	codeParameterInvalid    = 1100
	codeUnexpected          = 5
)

type fakeMilvus struct {
	milvuspb.UnimplementedMilvusServiceServer

	addr   string
	server *grpc.Server

	mu          sync.Mutex
	collections map[string]*fakeCollection
	nextID      int64
	auth        string                  // expected authorization header; "" = none
	calls       map[string]int          // by method name
	faults      map[string][]codes.Code // method → errors to return next
	hang        map[string]bool         // method → never answer
}

type fakeCollection struct {
	id          int64
	schema      *schemapb.CollectionSchema
	consistency commonpb.ConsistencyLevel
	indexes     map[string]*fakeIndex // by field name
	loaded      bool
	rows        map[string]fakeRow // by primary key
}

type fakeIndex struct {
	id        int64
	name      string
	field     string
	indexType string
	metric    string
	params    []*commonpb.KeyValuePair
}

// fakeRow holds a row's values by field name: string (VarChar), []byte (JSON),
// []float32 (FloatVector), map[uint32]float32 (SparseFloatVector).
type fakeRow map[string]any

// startFake serves a fake Milvus on a 127.0.0.1 port until the test ends.
func startFake(t testing.TB) *fakeMilvus {
	t.Helper()
	return startFakeOn(t, func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") })
}

func startFakeOn(t testing.TB, listen func() (net.Listener, error)) *fakeMilvus {
	t.Helper()
	f := &fakeMilvus{
		collections: map[string]*fakeCollection{},
		nextID:      1000,
		calls:       map[string]int{},
		faults:      map[string][]codes.Code{},
		hang:        map[string]bool{},
	}
	lis, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	f.server = grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.UnaryInterceptor(f.intercept),
	)
	milvuspb.RegisterMilvusServiceServer(f.server, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.server.Serve(lis)
	}()
	t.Cleanup(func() {
		f.server.Stop()
		<-done
	})
	return f
}

// stop shuts the server down (an outage).
func (f *fakeMilvus) stop() { f.server.Stop() }

func (f *fakeMilvus) requireAuth(user, password string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// fail makes the next calls of method fail with the given codes.
func (f *fakeMilvus) fail(method string, cs ...codes.Code) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[method] = append(f.faults[method], cs...)
}

func (f *fakeMilvus) setHang(method string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang[method] = on
}

func (f *fakeMilvus) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeMilvus) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	f.mu.Lock()
	f.calls[method]++
	auth, hang := f.auth, f.hang[method]
	var fault codes.Code
	if q := f.faults[method]; len(q) > 0 {
		fault, f.faults[method] = q[0], q[1:]
	}
	f.mu.Unlock()
	if auth != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		if !slices.Contains(md.Get("authorization"), auth) {
			return nil, status.Error(codes.Unauthenticated, "auth check failure, please check username and password are correct")
		}
	}
	if hang {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if fault != codes.OK {
		return nil, status.Errorf(fault, "injected %s failure", fault)
	}
	return handler(ctx, req)
}

// --- statuses

func okStatus() *commonpb.Status { return &commonpb.Status{ErrorCode: commonpb.ErrorCode_Success} }

func errStatus(legacy commonpb.ErrorCode, code int32, format string, args ...any) *commonpb.Status {
	return &commonpb.Status{ErrorCode: legacy, Code: code, Reason: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *commonpb.Status {
	return errStatus(commonpb.ErrorCode_IllegalArgument, codeParameterInvalid, format, args...)
}

func notFound(name string) *commonpb.Status {
	return errStatus(commonpb.ErrorCode_CollectionNotExists, codeCollectionNotExists, "can't find collection[database=default][collection=%s]", name)
}

// collection returns a collection, or the status saying it does not exist.
func (f *fakeMilvus) collection(name string) (*fakeCollection, *commonpb.Status) {
	c, ok := f.collections[name]
	if !ok {
		return nil, notFound(name)
	}
	return c, nil
}

func (c *fakeCollection) field(name string) *schemapb.FieldSchema {
	for _, fs := range c.schema.GetFields() {
		if fs.GetName() == name {
			return fs
		}
	}
	return nil
}

func (c *fakeCollection) pk() *schemapb.FieldSchema {
	for _, fs := range c.schema.GetFields() {
		if fs.GetIsPrimaryKey() {
			return fs
		}
	}
	return nil
}

func typeParam(fs *schemapb.FieldSchema, key string) string {
	for _, kv := range fs.GetTypeParams() {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	return ""
}

func kvMap(kvs []*commonpb.KeyValuePair) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

func isVector(t schemapb.DataType) bool {
	return t == schemapb.DataType_FloatVector || t == schemapb.DataType_SparseFloatVector
}

// --- collections

func (f *fakeMilvus) HasCollection(_ context.Context, req *milvuspb.HasCollectionRequest) (*milvuspb.BoolResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.collections[req.GetCollectionName()]
	return &milvuspb.BoolResponse{Status: okStatus(), Value: ok}, nil
}

func (f *fakeMilvus) CreateCollection(_ context.Context, req *milvuspb.CreateCollectionRequest) (*commonpb.Status, error) {
	var sch schemapb.CollectionSchema
	if err := proto.Unmarshal(req.GetSchema(), &sch); err != nil {
		return invalid("invalid schema: %v", err), nil
	}
	name := req.GetCollectionName()
	if sch.GetName() != name {
		return invalid("collection name [%s] does not match the schema name [%s]", name, sch.GetName()), nil
	}
	if sch.GetEnableDynamicField() {
		return invalid("the fake does not support dynamic fields"), nil
	}
	seen := map[string]bool{}
	pks, vectors := 0, 0
	for i, fs := range sch.GetFields() {
		if fs.GetName() == "" || seen[fs.GetName()] {
			return invalid("duplicated or empty field name %q", fs.GetName()), nil
		}
		seen[fs.GetName()] = true
		fs.FieldID = int64(100 + i)
		switch fs.GetDataType() {
		case schemapb.DataType_VarChar:
			n, err := strconv.Atoi(typeParam(fs, "max_length"))
			if err != nil || n <= 0 || n > 65535 {
				return invalid("the maximum length specified for field %s should be in (0, 65535]", fs.GetName()), nil
			}
		case schemapb.DataType_JSON:
		case schemapb.DataType_FloatVector:
			n, err := strconv.Atoi(typeParam(fs, "dim"))
			if err != nil || n <= 0 || n > 32768 {
				return invalid("invalid dimension of field %s", fs.GetName()), nil
			}
			vectors++
		case schemapb.DataType_SparseFloatVector:
			if typeParam(fs, "dim") != "" {
				return invalid("dim should not be specified for sparse vector field %s", fs.GetName()), nil
			}
			vectors++
		default:
			return invalid("the fake does not support field type %s", fs.GetDataType()), nil
		}
		if fs.GetIsPrimaryKey() {
			pks++
			if fs.GetDataType() != schemapb.DataType_VarChar || fs.GetAutoID() {
				return invalid("the fake supports VarChar primary keys without auto id only"), nil
			}
		}
	}
	if pks != 1 {
		return invalid("there must be exactly one primary key, found %d", pks), nil
	}
	if vectors == 0 {
		return invalid("schema does not contain vector field"), nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if existing, ok := f.collections[name]; ok {
		if proto.Equal(existing.schema, &sch) {
			return okStatus(), nil // idempotent, as in Milvus
		}
		return invalid("create duplicate collection with different parameters, collection: %s", name), nil
	}
	f.nextID++
	f.collections[name] = &fakeCollection{
		id: f.nextID, schema: &sch, consistency: req.GetConsistencyLevel(),
		indexes: map[string]*fakeIndex{}, rows: map[string]fakeRow{},
	}
	return okStatus(), nil
}

func (f *fakeMilvus) DescribeCollection(_ context.Context, req *milvuspb.DescribeCollectionRequest) (*milvuspb.DescribeCollectionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return &milvuspb.DescribeCollectionResponse{Status: st}, nil
	}
	return &milvuspb.DescribeCollectionResponse{
		Status:           okStatus(),
		Schema:           proto.Clone(c.schema).(*schemapb.CollectionSchema),
		CollectionID:     c.id,
		CollectionName:   req.GetCollectionName(),
		ConsistencyLevel: c.consistency,
		ShardsNum:        1,
	}, nil
}

func (f *fakeMilvus) DropCollection(_ context.Context, req *milvuspb.DropCollectionRequest) (*commonpb.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.collections, req.GetCollectionName()) // idempotent, as in Milvus
	return okStatus(), nil
}

// --- indexes

func (f *fakeMilvus) CreateIndex(_ context.Context, req *milvuspb.CreateIndexRequest) (*commonpb.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return st, nil
	}
	fs := c.field(req.GetFieldName())
	if fs == nil {
		return invalid("cannot create index on non-exist field: %s", req.GetFieldName()), nil
	}
	p := kvMap(req.GetExtraParams())
	ix := &fakeIndex{field: fs.GetName(), indexType: p["index_type"], metric: p["metric_type"], params: req.GetExtraParams()}
	ix.name = cmp.Or(req.GetIndexName(), fs.GetName())
	if raw := p["params"]; raw != "" && !json.Valid([]byte(raw)) {
		return invalid("index params %q are not JSON", raw), nil
	}
	switch fs.GetDataType() {
	case schemapb.DataType_FloatVector:
		if !slices.Contains([]string{"FLAT", "IVF_FLAT", "HNSW", "AUTOINDEX"}, ix.indexType) {
			return invalid("invalid index type: %s", ix.indexType), nil
		}
		if !slices.Contains([]string{"L2", "IP", "COSINE"}, ix.metric) {
			return invalid("metric type %s not found or not supported", ix.metric), nil
		}
	case schemapb.DataType_SparseFloatVector:
		if ix.indexType != "SPARSE_INVERTED_INDEX" && ix.indexType != "SPARSE_WAND" {
			return invalid("invalid index type: %s", ix.indexType), nil
		}
		if ix.metric != "IP" {
			return invalid("only IP is the supported metric type for sparse index"), nil
		}
	default:
		return invalid("the fake supports vector indexes only"), nil
	}
	if old, ok := c.indexes[fs.GetName()]; ok {
		if old.indexType == ix.indexType && old.metric == ix.metric && kvMap(old.params)["params"] == p["params"] {
			return okStatus(), nil
		}
		return invalid("at most one distinct index is allowed per field"), nil
	}
	f.nextID++
	ix.id = f.nextID
	c.indexes[fs.GetName()] = ix
	return okStatus(), nil
}

func (f *fakeMilvus) DescribeIndex(_ context.Context, req *milvuspb.DescribeIndexRequest) (*milvuspb.DescribeIndexResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return &milvuspb.DescribeIndexResponse{Status: st}, nil
	}
	var descs []*milvuspb.IndexDescription
	for _, fs := range c.schema.GetFields() { // schema order
		ix, ok := c.indexes[fs.GetName()]
		if !ok || (req.GetIndexName() != "" && req.GetIndexName() != ix.name) {
			continue
		}
		descs = append(descs, &milvuspb.IndexDescription{
			IndexName: ix.name, IndexID: ix.id, FieldName: ix.field, Params: ix.params,
			IndexedRows: int64(len(c.rows)), TotalRows: int64(len(c.rows)), State: commonpb.IndexState_Finished,
		})
	}
	if len(descs) == 0 {
		return &milvuspb.DescribeIndexResponse{Status: errStatus(commonpb.ErrorCode_IndexNotExist, codeIndexNotFound, "index not found[collection=%s]", req.GetCollectionName())}, nil
	}
	return &milvuspb.DescribeIndexResponse{Status: okStatus(), IndexDescriptions: descs}, nil
}

// --- load state

func (f *fakeMilvus) LoadCollection(_ context.Context, req *milvuspb.LoadCollectionRequest) (*commonpb.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return st, nil
	}
	for _, fs := range c.schema.GetFields() {
		if _, ok := c.indexes[fs.GetName()]; isVector(fs.GetDataType()) && !ok {
			return errStatus(commonpb.ErrorCode_IndexNotExist, codeIndexNotFound, "there is no vector index on field: [%s], please create index firstly", fs.GetName()), nil
		}
	}
	c.loaded = true
	return okStatus(), nil
}

func (f *fakeMilvus) ReleaseCollection(_ context.Context, req *milvuspb.ReleaseCollectionRequest) (*commonpb.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return st, nil
	}
	c.loaded = false
	return okStatus(), nil
}

func (f *fakeMilvus) GetLoadState(_ context.Context, req *milvuspb.GetLoadStateRequest) (*milvuspb.GetLoadStateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return &milvuspb.GetLoadStateResponse{Status: st, State: commonpb.LoadState_LoadStateNotExist}, nil
	}
	state := commonpb.LoadState_LoadStateNotLoad
	if c.loaded {
		state = commonpb.LoadState_LoadStateLoaded
	}
	return &milvuspb.GetLoadStateResponse{Status: okStatus(), State: state}, nil
}

func (f *fakeMilvus) GetLoadingProgress(_ context.Context, req *milvuspb.GetLoadingProgressRequest) (*milvuspb.GetLoadingProgressResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return &milvuspb.GetLoadingProgressResponse{Status: st}, nil
	}
	if !c.loaded {
		return &milvuspb.GetLoadingProgressResponse{Status: errStatus(commonpb.ErrorCode_UnexpectedError, codeCollectionNotLoaded, "collection not loaded")}, nil
	}
	return &milvuspb.GetLoadingProgressResponse{Status: okStatus(), Progress: 100, RefreshProgress: 100}, nil
}

// --- writes

func (f *fakeMilvus) Upsert(_ context.Context, req *milvuspb.UpsertRequest) (*milvuspb.MutationResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return &milvuspb.MutationResult{Status: st}, nil
	}
	rows, st := c.decodeRows(req.GetFieldsData(), int(req.GetNumRows()))
	if st != nil {
		return &milvuspb.MutationResult{Status: st}, nil
	}
	pk := c.pk().GetName()
	ids := make([]string, len(rows))
	succ := make([]uint32, len(rows))
	for i, r := range rows {
		ids[i] = r[pk].(string)
		succ[i] = uint32(i)
		c.rows[ids[i]] = r
	}
	return &milvuspb.MutationResult{
		Status:    okStatus(),
		IDs:       &schemapb.IDs{IdField: &schemapb.IDs_StrId{StrId: &schemapb.StringArray{Data: ids}}},
		SuccIndex: succ, UpsertCnt: int64(len(rows)), InsertCnt: int64(len(rows)), Timestamp: uint64(time.Now().UnixNano()),
	}, nil
}

// decodeRows validates column data against the schema, as Milvus' proxy does.
func (c *fakeCollection) decodeRows(data []*schemapb.FieldData, n int) ([]fakeRow, *commonpb.Status) {
	if n <= 0 {
		return nil, invalid("the number of rows must be positive")
	}
	byName := map[string]*schemapb.FieldData{}
	for _, fd := range data {
		if c.field(fd.GetFieldName()) == nil {
			return nil, invalid("field %s does not exist in collection", fd.GetFieldName())
		}
		if byName[fd.GetFieldName()] != nil {
			return nil, invalid("duplicated field data %s", fd.GetFieldName())
		}
		byName[fd.GetFieldName()] = fd
	}
	rows := make([]fakeRow, n)
	for i := range rows {
		rows[i] = fakeRow{}
	}
	for _, fs := range c.schema.GetFields() {
		name := fs.GetName()
		fd := byName[name]
		if fd == nil {
			return nil, invalid("field %s not passed", name)
		}
		if fd.GetType() != fs.GetDataType() {
			return nil, invalid("field %s: data type %s does not match the schema type %s", name, fd.GetType(), fs.GetDataType())
		}
		switch fs.GetDataType() {
		case schemapb.DataType_VarChar:
			vals := fd.GetScalars().GetStringData().GetData()
			if len(vals) != n {
				return nil, invalid("the num_rows (%d) of field (%s) is not equal to passed num_rows (%d)", len(vals), name, n)
			}
			maxLen, _ := strconv.Atoi(typeParam(fs, "max_length"))
			for i, v := range vals {
				if len(v) > maxLen {
					return nil, invalid("the length (%d) of %dth VarChar %s exceeds max length (%d)", len(v), i, name, maxLen)
				}
				if !utf8.ValidString(v) {
					return nil, invalid("string of field %s is not valid UTF-8", name)
				}
				rows[i][name] = v
			}
		case schemapb.DataType_JSON:
			vals := fd.GetScalars().GetJsonData().GetData()
			if len(vals) != n {
				return nil, invalid("the num_rows (%d) of field (%s) is not equal to passed num_rows (%d)", len(vals), name, n)
			}
			for i, v := range vals {
				if !json.Valid(v) {
					return nil, invalid("invalid JSON in field %s: %q", name, v)
				}
				rows[i][name] = slices.Clone(v)
			}
		case schemapb.DataType_FloatVector:
			dim, _ := strconv.Atoi(typeParam(fs, "dim"))
			vf := fd.GetVectors()
			flat := vf.GetFloatVector().GetData()
			if int(vf.GetDim()) != dim {
				return nil, invalid("the dim (%d) of field data (%s) is not equal to schema dim (%d)", vf.GetDim(), name, dim)
			}
			if len(flat) != n*dim {
				return nil, invalid("the num_rows (%d) of field (%s) is not equal to passed num_rows (%d)", len(flat)/dim, name, n)
			}
			for i := range rows {
				v := slices.Clone(flat[i*dim : (i+1)*dim])
				for _, x := range v {
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						return nil, invalid("the float data should not be NaN or Inf")
					}
				}
				rows[i][name] = v
			}
		case schemapb.DataType_SparseFloatVector:
			contents := fd.GetVectors().GetSparseFloatVector().GetContents()
			if len(contents) != n {
				return nil, invalid("the num_rows (%d) of field (%s) is not equal to passed num_rows (%d)", len(contents), name, n)
			}
			for i, b := range contents {
				v, err := decodeSparse(b, true)
				if err != nil {
					return nil, invalid("%v", err)
				}
				rows[i][name] = v
			}
		}
	}
	return rows, nil
}

// decodeSparse reads a sparse row the way Milvus 2.4 validates it: 8-byte
// (index, value) pairs, indices strictly increasing and below 2^32-1, finite
// values, and (for stored rows) not empty.
func decodeSparse(b []byte, stored bool) (map[uint32]float32, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("invalid data length in sparse float vector: %d", len(b))
	}
	if len(b) == 0 && stored {
		return nil, fmt.Errorf("empty sparse float vector row")
	}
	v := map[uint32]float32{}
	var prev int64 = -1
	for i := 0; i < len(b); i += 8 {
		idx := binary.LittleEndian.Uint32(b[i:])
		val := math.Float32frombits(binary.LittleEndian.Uint32(b[i+4:]))
		if idx == math.MaxUint32 {
			return nil, fmt.Errorf("sparse vector index must be less than 2^32-1")
		}
		if int64(idx) <= prev {
			return nil, fmt.Errorf("unsorted or same indices in sparse float vector")
		}
		if math.IsNaN(float64(val)) || math.IsInf(float64(val), 0) {
			return nil, fmt.Errorf("sparse float vector value must be finite")
		}
		prev = int64(idx)
		v[idx] = val
	}
	return v, nil
}

func (f *fakeMilvus) Delete(_ context.Context, req *milvuspb.DeleteRequest) (*milvuspb.MutationResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return &milvuspb.MutationResult{Status: st}, nil
	}
	e, err := parseExpr(req.GetExpr(), c)
	if err != nil {
		return &milvuspb.MutationResult{Status: invalid("failed to create delete plan: cannot parse expression: %s, error: %v", req.GetExpr(), err)}, nil
	}
	// Deleting by anything but primary keys queries the collection first.
	if !e.onlyPK(c.pk().GetName()) && !c.loaded {
		return &milvuspb.MutationResult{Status: errStatus(commonpb.ErrorCode_UnexpectedError, codeCollectionNotLoaded, "collection not loaded[collection=%s]", req.GetCollectionName())}, nil
	}
	var n int64
	for id, r := range c.rows {
		if e.eval(r) {
			delete(c.rows, id)
			n++
		}
	}
	return &milvuspb.MutationResult{Status: okStatus(), DeleteCnt: n, Timestamp: uint64(time.Now().UnixNano())}, nil
}

// --- search

type scored struct {
	row   fakeRow
	id    string
	score float32
}

func sortScored(s []scored) {
	slices.SortFunc(s, func(a, b scored) int {
		return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.id, b.id))
	})
}

func (f *fakeMilvus) Search(_ context.Context, req *milvuspb.SearchRequest) (*milvuspb.SearchResults, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return &milvuspb.SearchResults{Status: st}, nil
	}
	if !c.loaded {
		return &milvuspb.SearchResults{Status: errStatus(commonpb.ErrorCode_UnexpectedError, codeCollectionNotLoaded, "collection not loaded[collection=%s]", req.GetCollectionName())}, nil
	}
	lists, topk, st := c.search(req)
	if st != nil {
		return &milvuspb.SearchResults{Status: st}, nil
	}
	data, st := c.resultData(lists, topk, req.GetOutputFields())
	if st != nil {
		return &milvuspb.SearchResults{Status: st}, nil
	}
	return &milvuspb.SearchResults{Status: okStatus(), Results: data, CollectionName: req.GetCollectionName()}, nil
}

// search runs one ANN search request: a ranked list per query vector.
func (c *fakeCollection) search(req *milvuspb.SearchRequest) ([][]scored, int, *commonpb.Status) {
	p := kvMap(req.GetSearchParams())
	fs := c.field(p["anns_field"])
	if fs == nil || !isVector(fs.GetDataType()) {
		return nil, 0, invalid("failed to get anns field: %q is not a vector field", p["anns_field"])
	}
	ix := c.indexes[fs.GetName()]
	if ix == nil {
		return nil, 0, errStatus(commonpb.ErrorCode_IndexNotExist, codeIndexNotFound, "index not found for field %s", fs.GetName())
	}
	if p["metric_type"] != "" && p["metric_type"] != ix.metric {
		return nil, 0, invalid("metric type not match: invalid parameter[expected=%s][actual=%s]", ix.metric, p["metric_type"])
	}
	if ix.metric != "IP" {
		return nil, 0, invalid("the fake scores with IP only")
	}
	topk, err := strconv.Atoi(p["topk"])
	if err != nil || topk <= 0 || topk > 16384 {
		return nil, 0, invalid("topk [%s] is invalid, it should be in range [1, 16384]", p["topk"])
	}
	offset := 0
	if s := p["offset"]; s != "" {
		if offset, err = strconv.Atoi(s); err != nil || offset < 0 || offset+topk > 16384 {
			return nil, 0, invalid("offset [%s] is invalid", s)
		}
	}
	var params map[string]any
	if err := json.Unmarshal([]byte(cmp.Or(p["params"], "{}")), &params); err != nil {
		return nil, 0, invalid("invalid search params %q", p["params"])
	}
	if ef, ok := params["ef"].(float64); ok && ix.indexType == "HNSW" && int(ef) < topk {
		return nil, 0, invalid("ef(%d) should be larger than k(%d)", int(ef), topk)
	}
	if r, ok := params["drop_ratio_search"].(float64); ok && (r < 0 || r >= 1) {
		return nil, 0, invalid("drop_ratio_search must be in [0, 1)")
	}
	var phg commonpb.PlaceholderGroup
	if err := proto.Unmarshal(req.GetPlaceholderGroup(), &phg); err != nil || len(phg.GetPlaceholders()) != 1 {
		return nil, 0, invalid("invalid placeholder group")
	}
	ph := phg.GetPlaceholders()[0]
	if req.GetNq() != 0 && int(req.GetNq()) != len(ph.GetValues()) {
		return nil, 0, invalid("nq (%d) does not match the number of vectors (%d)", req.GetNq(), len(ph.GetValues()))
	}
	var filter exprNode
	if strings.TrimSpace(req.GetDsl()) != "" {
		if filter, err = parseExpr(req.GetDsl(), c); err != nil {
			return nil, 0, invalid("failed to create query plan: cannot parse expression: %s, error: %v", req.GetDsl(), err)
		}
	}
	ids := make([]string, 0, len(c.rows))
	for id := range c.rows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var lists [][]scored
	for _, q := range ph.GetValues() {
		var score func(fakeRow) (float32, bool)
		switch fs.GetDataType() {
		case schemapb.DataType_FloatVector:
			dim, _ := strconv.Atoi(typeParam(fs, "dim"))
			if ph.GetType() != commonpb.PlaceholderType_FloatVector || len(q) != 4*dim {
				return nil, 0, invalid("the query is not a %d-dimensional float vector", dim)
			}
			qv := make([]float32, dim)
			for i := range qv {
				qv[i] = math.Float32frombits(binary.LittleEndian.Uint32(q[4*i:]))
			}
			score = func(r fakeRow) (float32, bool) {
				var s float32
				for i, x := range r[fs.GetName()].([]float32) {
					s += x * qv[i]
				}
				return s, true
			}
		case schemapb.DataType_SparseFloatVector:
			if ph.GetType() != commonpb.PlaceholderType_SparseFloatVector {
				return nil, 0, invalid("the query is not a sparse float vector")
			}
			qv, err := decodeSparse(q, false)
			if err != nil {
				return nil, 0, invalid("%v", err)
			}
			// The inverted index only reaches rows sharing a term.
			score = func(r fakeRow) (float32, bool) {
				var s float32
				for idx, w := range r[fs.GetName()].(map[uint32]float32) {
					s += w * qv[idx]
				}
				return s, s != 0
			}
		}
		var list []scored
		for _, id := range ids {
			r := c.rows[id]
			if filter != nil && !filter.eval(r) {
				continue
			}
			if s, ok := score(r); ok {
				list = append(list, scored{row: r, id: id, score: s})
			}
		}
		sortScored(list)
		list = list[min(offset, len(list)):]
		lists = append(lists, list[:min(topk, len(list))])
	}
	return lists, topk, nil
}

// resultData packs ranked lists with their output fields.
func (c *fakeCollection) resultData(lists [][]scored, topk int, output []string) (*schemapb.SearchResultData, *commonpb.Status) {
	data := &schemapb.SearchResultData{NumQueries: int64(len(lists)), TopK: int64(topk), OutputFields: output}
	var ids []string
	for _, l := range lists {
		data.Topks = append(data.Topks, int64(len(l)))
		for _, s := range l {
			ids = append(ids, s.id)
			data.Scores = append(data.Scores, s.score)
		}
	}
	data.Ids = &schemapb.IDs{IdField: &schemapb.IDs_StrId{StrId: &schemapb.StringArray{Data: ids}}}
	for _, name := range output {
		fs := c.field(name)
		if fs == nil {
			return nil, invalid("field %s not exist", name)
		}
		fd := &schemapb.FieldData{Type: fs.GetDataType(), FieldName: name, FieldId: fs.GetFieldID()}
		switch fs.GetDataType() {
		case schemapb.DataType_VarChar:
			var vals []string
			for _, l := range lists {
				for _, s := range l {
					vals = append(vals, s.row[name].(string))
				}
			}
			fd.Field = &schemapb.FieldData_Scalars{Scalars: &schemapb.ScalarField{Data: &schemapb.ScalarField_StringData{StringData: &schemapb.StringArray{Data: vals}}}}
		case schemapb.DataType_JSON:
			var vals [][]byte
			for _, l := range lists {
				for _, s := range l {
					vals = append(vals, s.row[name].([]byte))
				}
			}
			fd.Field = &schemapb.FieldData_Scalars{Scalars: &schemapb.ScalarField{Data: &schemapb.ScalarField_JsonData{JsonData: &schemapb.JSONArray{Data: vals}}}}
		case schemapb.DataType_FloatVector:
			dim, _ := strconv.Atoi(typeParam(fs, "dim"))
			var vals []float32
			for _, l := range lists {
				for _, s := range l {
					vals = append(vals, s.row[name].([]float32)...)
				}
			}
			fd.Field = &schemapb.FieldData_Vectors{Vectors: &schemapb.VectorField{Dim: int64(dim), Data: &schemapb.VectorField_FloatVector{FloatVector: &schemapb.FloatArray{Data: vals}}}}
		default:
			return nil, invalid("the fake cannot output field %s of type %s", name, fs.GetDataType())
		}
		data.FieldsData = append(data.FieldsData, fd)
	}
	return data, nil
}

func (f *fakeMilvus) HybridSearch(_ context.Context, req *milvuspb.HybridSearchRequest) (*milvuspb.SearchResults, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := func(st *commonpb.Status) (*milvuspb.SearchResults, error) {
		return &milvuspb.SearchResults{Status: st}, nil
	}
	c, st := f.collection(req.GetCollectionName())
	if st != nil {
		return fail(st)
	}
	if !c.loaded {
		return fail(errStatus(commonpb.ErrorCode_UnexpectedError, codeCollectionNotLoaded, "collection not loaded[collection=%s]", req.GetCollectionName()))
	}
	if n := len(req.GetRequests()); n == 0 || n > 1024 {
		return fail(invalid("maximum of ann search requests is 1024, got %d", n))
	}
	rp := kvMap(req.GetRankParams())
	limit, err := strconv.Atoi(rp["limit"])
	if err != nil || limit <= 0 || limit > 16384 {
		return fail(invalid("invalid limit %q", rp["limit"]))
	}
	offset, _ := strconv.Atoi(cmp.Or(rp["offset"], "0"))
	if rp["strategy"] != "rrf" {
		return fail(invalid("the fake implements the rrf ranker only, got %q", rp["strategy"]))
	}
	var rrf struct {
		K *float64 `json:"k"`
	}
	if err := json.Unmarshal([]byte(cmp.Or(rp["params"], "{}")), &rrf); err != nil {
		return fail(invalid("invalid rank params %q", rp["params"]))
	}
	k := 60.0
	if rrf.K != nil {
		k = *rrf.K
	}
	if k <= 0 || k >= 16384 {
		return fail(invalid("The rank params k should be in range (0, 16384)"))
	}
	var perReq [][][]scored
	nq := -1
	for _, sub := range req.GetRequests() {
		lists, _, st := c.search(sub)
		if st != nil {
			return fail(st)
		}
		if nq >= 0 && len(lists) != nq {
			return fail(invalid("nq of the ann search requests differ"))
		}
		nq = len(lists)
		perReq = append(perReq, lists)
	}
	fused := make([][]scored, nq)
	for q := range nq {
		acc := map[string]*scored{}
		for _, lists := range perReq {
			for rank, s := range lists[q] {
				a, ok := acc[s.id]
				if !ok {
					a = &scored{row: s.row, id: s.id}
					acc[s.id] = a
				}
				a.score += float32(1 / (k + float64(rank+1)))
			}
		}
		var list []scored
		for _, a := range acc {
			list = append(list, *a)
		}
		sortScored(list)
		list = list[min(offset, len(list)):]
		fused[q] = list[:min(limit, len(list))]
	}
	data, st := c.resultData(fused, limit, req.GetOutputFields())
	if st != nil {
		return fail(st)
	}
	return &milvuspb.SearchResults{Status: okStatus(), Results: data, CollectionName: req.GetCollectionName()}, nil
}

// --- boolean expressions
//
// The parser accepts the subset of Milvus' expression grammar the adapter
// emits (see expr.go) and rejects everything else, so an expression that
// smuggled in syntax through a value fails here instead of passing silently:
//
//	or      = and { "||" and }
//	and     = primary { "&&" primary }
//	primary = "(" or ")" | field ( "==" value | "in" "[" value { "," value } "]" )
//	field   = ident [ "[" string "]" ]
//	value   = string | number | "true" | "false"
//
// String literals are decoded as Milvus does: C-style lexing (no raw line
// breaks), \' unescaped, then strconv.Unquote.

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokNumber
	tokOp // == && || [ ] ( ) ,
)

type token struct {
	kind tokKind
	text string
	str  string  // decoded string literal
	num  float64 // numeric literal
}

func lexExpr(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		case ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			toks = append(toks, token{kind: tokIdent, text: s[i:j]})
			i = j
		case ch == '"':
			j := i + 1
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated string at %d", i)
				}
				if s[j] == '\\' {
					j += 2
					continue
				}
				if s[j] == '\n' || s[j] == '\r' {
					return nil, fmt.Errorf("line break in string at %d", j)
				}
				if s[j] == '"' {
					break
				}
				j++
			}
			lit := s[i : j+1]
			str, err := milvusUnquote(lit)
			if err != nil {
				return nil, fmt.Errorf("bad string literal %s: %v", lit, err)
			}
			toks = append(toks, token{kind: tokString, text: lit, str: str})
			i = j + 1
		case ch == '-' || ch >= '0' && ch <= '9':
			j := i
			if s[j] == '-' {
				j++
			}
			start := j
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
				(s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E')) {
				j++
			}
			if j == start {
				return nil, fmt.Errorf("unexpected %q at %d", ch, i)
			}
			n, err := strconv.ParseFloat(s[i:j], 64)
			if err != nil {
				return nil, fmt.Errorf("bad number %q", s[i:j])
			}
			toks = append(toks, token{kind: tokNumber, text: s[i:j], num: n})
			i = j
		case strings.HasPrefix(s[i:], "==") || strings.HasPrefix(s[i:], "&&") || strings.HasPrefix(s[i:], "||"):
			toks = append(toks, token{kind: tokOp, text: s[i : i+2]})
			i += 2
		case strings.IndexByte("[](),", ch) >= 0:
			toks = append(toks, token{kind: tokOp, text: s[i : i+1]})
			i++
		default:
			return nil, fmt.Errorf("unexpected %q at %d", ch, i)
		}
	}
	return append(toks, token{kind: tokEOF}), nil
}

// milvusUnquote decodes a double-quoted literal like Milvus'
// convertEscapeSingle followed by strconv.Unquote.
func milvusUnquote(lit string) (string, error) {
	var b strings.Builder
	backslashes := 0
	for i := 0; i < len(lit); i++ {
		if lit[i] == '\'' && backslashes%2 == 1 {
			s := b.String()
			b.Reset()
			b.WriteString(s[:len(s)-1])
		}
		if lit[i] == '\\' {
			backslashes++
		} else {
			backslashes = 0
		}
		b.WriteByte(lit[i])
	}
	return strconv.Unquote(b.String())
}

type exprNode interface {
	eval(fakeRow) bool
	onlyPK(pk string) bool
}

type orNode []exprNode
type andNode []exprNode

func (n orNode) eval(r fakeRow) bool {
	return slices.ContainsFunc(n, func(e exprNode) bool { return e.eval(r) })
}

func (n orNode) onlyPK(pk string) bool {
	return !slices.ContainsFunc(n, func(e exprNode) bool { return !e.onlyPK(pk) })
}

func (n andNode) eval(r fakeRow) bool {
	return !slices.ContainsFunc(n, func(e exprNode) bool { return !e.eval(r) })
}

func (n andNode) onlyPK(pk string) bool {
	return !slices.ContainsFunc(n, func(e exprNode) bool { return !e.onlyPK(pk) })
}

// matchNode is `field == value` or `field in [values]`.
type matchNode struct {
	field  string
	key    string // JSON key; "" for a scalar field
	isJSON bool
	values []any // string, float64 (numbers), bool
}

func (n *matchNode) onlyPK(pk string) bool { return !n.isJSON && n.field == pk }

func (n *matchNode) eval(r fakeRow) bool {
	var got any
	if n.isJSON {
		var m map[string]any
		if err := json.Unmarshal(r[n.field].([]byte), &m); err != nil {
			return false
		}
		v, ok := m[n.key]
		if !ok {
			return false
		}
		got = v
	} else {
		got = r[n.field]
	}
	return slices.ContainsFunc(n.values, func(want any) bool { return want == got })
}

type exprParser struct {
	toks []token
	pos  int
	coll *fakeCollection
}

func parseExpr(s string, c *fakeCollection) (exprNode, error) {
	toks, err := lexExpr(s)
	if err != nil {
		return nil, err
	}
	p := &exprParser{toks: toks, coll: c}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, fmt.Errorf("unexpected %q", t.text)
	}
	return e, nil
}

func (p *exprParser) peek() token { return p.toks[p.pos] }
func (p *exprParser) next() token { t := p.toks[p.pos]; p.pos++; return t }

func (p *exprParser) expect(op string) error {
	if t := p.next(); t.kind != tokOp || t.text != op {
		return fmt.Errorf("expected %q, got %q", op, t.text)
	}
	return nil
}

func (p *exprParser) or() (exprNode, error) {
	var n orNode
	for {
		e, err := p.and()
		if err != nil {
			return nil, err
		}
		n = append(n, e)
		if t := p.peek(); t.kind != tokOp || t.text != "||" {
			break
		}
		p.next()
	}
	if len(n) == 1 {
		return n[0], nil
	}
	return n, nil
}

func (p *exprParser) and() (exprNode, error) {
	var n andNode
	for {
		e, err := p.primary()
		if err != nil {
			return nil, err
		}
		n = append(n, e)
		if t := p.peek(); t.kind != tokOp || t.text != "&&" {
			break
		}
		p.next()
	}
	if len(n) == 1 {
		return n[0], nil
	}
	return n, nil
}

func (p *exprParser) primary() (exprNode, error) {
	t := p.next()
	if t.kind == tokOp && t.text == "(" {
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		return e, p.expect(")")
	}
	if t.kind != tokIdent || t.text == "in" || t.text == "true" || t.text == "false" {
		return nil, fmt.Errorf("expected a field, got %q", t.text)
	}
	fs := p.coll.field(t.text)
	if fs == nil {
		return nil, fmt.Errorf("field %s not exist", t.text)
	}
	n := &matchNode{field: t.text}
	switch fs.GetDataType() {
	case schemapb.DataType_VarChar:
	case schemapb.DataType_JSON:
		n.isJSON = true
		if err := p.expect("["); err != nil {
			return nil, fmt.Errorf("JSON field %s needs a key: %v", t.text, err)
		}
		k := p.next()
		if k.kind != tokString {
			return nil, fmt.Errorf("expected a JSON key, got %q", k.text)
		}
		n.key = k.str
		if err := p.expect("]"); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("the fake cannot filter on field %s", t.text)
	}
	op := p.next()
	switch {
	case op.kind == tokOp && op.text == "==":
		v, err := p.value(n)
		if err != nil {
			return nil, err
		}
		n.values = []any{v}
	case op.kind == tokIdent && op.text == "in":
		if err := p.expect("["); err != nil {
			return nil, err
		}
		for {
			v, err := p.value(n)
			if err != nil {
				return nil, err
			}
			n.values = append(n.values, v)
			if t := p.next(); t.kind == tokOp && t.text == "]" {
				break
			} else if t.kind != tokOp || t.text != "," {
				return nil, fmt.Errorf("expected ',' or ']', got %q", t.text)
			}
		}
	default:
		return nil, fmt.Errorf("expected '==' or 'in', got %q", op.text)
	}
	return n, nil
}

func (p *exprParser) value(n *matchNode) (any, error) {
	t := p.next()
	var v any
	switch {
	case t.kind == tokString:
		v = t.str
	case t.kind == tokNumber:
		v = t.num
	case t.kind == tokIdent && (t.text == "true" || t.text == "false"):
		v = t.text == "true"
	default:
		return nil, fmt.Errorf("expected a value, got %q", t.text)
	}
	if _, isString := v.(string); !n.isJSON && !isString {
		return nil, fmt.Errorf("cannot compare VarChar field %s with %s", n.field, t.text)
	}
	return v, nil
}
