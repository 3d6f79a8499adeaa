package embedded

import (
	"cmp"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

// index is the in-memory index of one knowledge base. Chunks live in slots:
// parallel slices indexed by slot number, appended to on upsert. Removing a
// chunk (delete, or replacement by a chunk with the same id) sets its
// tombstone bit; compact reclaims dead slots once they are a quarter of the
// total. Chunk texts are not held: hits fetch them from the repository.
type index struct {
	wmu sync.Mutex   // serialises writers across the repository call and the update
	mu  sync.RWMutex // guards state: searches share, updates exclude

	// quant: the index also keeps int8 codes of the vectors, scanned first
	// (a quarter of the memory traffic); the candidates they cannot rule out
	// are rescored with the float32 vectors, so results stay exact.
	quant bool

	state
}

// state is an index's data.
type state struct {
	dim    int       // vector dimension, 0 while empty
	vecs   []float32 // slot s is vecs[s*dim : (s+1)*dim]
	codes  []int8    // with quant: vecs[i] ≈ scales[i/dim]·codes[i]
	scales []float32

	// Per-slot chunk metadata.
	ids   []string
	doc   []int32 // into docs
	pos   []int32 // chunk index within its document
	page  []int32
	head  []int32 // into heads, -1 for none
	meta  []int32 // into metas, -1 for none
	lens  []int32 // length in terms
	dead  []uint64
	ndead int

	// Distinct term ids of every slot, concatenated: slot s has
	// terms[tstart[s]:tstart[s+1]]. Needed to keep the BM25 document
	// frequencies exact when a chunk goes.
	terms  []uint32
	tstart []uint32

	// Keyword index: term id → (slot, document-side weight), in slot order.
	post map[uint32][]posting

	slotOf   map[string]int32 // live chunk id → slot
	docs     []docInfo
	docOf    map[string]int32 // document id → docs
	metas    []map[string]any // distinct metadata maps, shared by chunks
	metaKeys []string         // canonical JSON of metas, "" if not encodable
	metaOf   map[string]int32 // canonical JSON → metas
	docMeta  map[int32]int32  // document → its latest metas entry
	heads    []string
	headOf   map[string]int32

	stats bm25.Stats
}

type posting struct {
	slot int32
	w    float32
}

type docInfo struct {
	id, name string
}

// useCodes decides whether new indexes keep int8 codes: where a fast kernel
// exists. A variable so tests can cover both scans.
var useCodes = dotCodesImpl != nil

func newIndex() *index {
	return &index{state: newState(), quant: useCodes}
}

func newState() state {
	return state{
		tstart: []uint32{0},
		post:   map[uint32][]posting{},
		slotOf: map[string]int32{}, docOf: map[string]int32{}, docMeta: map[int32]int32{}, metaOf: map[string]int32{}, headOf: map[string]int32{},
		stats: bm25.Stats{DF: map[uint32]int{}},
	}
}

// live is the number of chunks.
func (x *index) live() int { return len(x.ids) - x.ndead }

func (x *index) isDead(s int) bool { return x.dead[s>>6]&(1<<(uint(s)&63)) != 0 }

// add appends a chunk, replacing a live chunk with the same id. len(dense)
// must be x.dim (set by the first chunk). Called under mu.Lock.
func (x *index) add(c *knowledge.Chunk, dense []float32, sparse map[uint32]float32, dl int) {
	if old, ok := x.slotOf[c.ID]; ok {
		x.kill(old)
	}
	if x.dim == 0 {
		x.dim = len(dense)
	}
	slot := int32(len(x.ids))
	x.vecs = append(x.vecs, dense...)
	if x.quant {
		x.codes = slices.Grow(x.codes, x.dim)[:len(x.codes)+x.dim]
		x.scales = append(x.scales, quantize(x.codes[len(x.codes)-x.dim:], dense))
	}
	x.ids = append(x.ids, c.ID)
	d := x.docIndex(c.DocumentID, c.Document)
	x.doc = append(x.doc, d)
	x.pos = append(x.pos, int32(c.Index))
	x.page = append(x.page, int32(c.Page))
	x.head = append(x.head, x.headIndex(c.Heading))
	x.meta = append(x.meta, x.metaIndex(d, c.Metadata))
	x.lens = append(x.lens, int32(dl))
	if int(slot)>>6 >= len(x.dead) {
		x.dead = append(x.dead, 0)
	}
	ids := bm25.SortedIDs(sparse)
	for _, t := range ids {
		x.post[t] = append(x.post[t], posting{slot: slot, w: sparse[t]})
	}
	x.terms = append(x.terms, ids...)
	x.tstart = append(x.tstart, uint32(len(x.terms)))
	x.stats.AddTerms(ids, dl)
	x.slotOf[c.ID] = slot
}

// kill tombstones a live slot. Its postings stay until compaction; searches
// skip dead slots.
func (x *index) kill(s int32) {
	if x.isDead(int(s)) {
		return
	}
	x.dead[s>>6] |= 1 << (uint(s) & 63)
	x.ndead++
	if x.slotOf[x.ids[s]] == s {
		delete(x.slotOf, x.ids[s])
	}
	x.stats.RemoveTerms(x.terms[x.tstart[s]:x.tstart[s+1]], int(x.lens[s]))
}

// deleteDocument tombstones the chunks of a document, and those with the
// given ids. Called under mu.Lock.
func (x *index) deleteDocument(documentID string, ids []string) {
	for _, id := range ids {
		if s, ok := x.slotOf[id]; ok {
			x.kill(s)
		}
	}
	d, ok := x.docOf[documentID]
	if !ok {
		return
	}
	for s, sd := range x.doc {
		if sd == d && !x.isDead(s) {
			x.kill(int32(s))
		}
	}
}

func (x *index) docIndex(id, name string) int32 {
	if d, ok := x.docOf[id]; ok {
		if name != "" {
			x.docs[d].name = name
		}
		return d
	}
	d := int32(len(x.docs))
	x.docs = append(x.docs, docInfo{id: id, name: name})
	x.docOf[id] = d
	return d
}

func (x *index) headIndex(h string) int32 {
	if h == "" {
		return -1
	}
	if i, ok := x.headOf[h]; ok {
		return i
	}
	i := int32(len(x.heads))
	x.heads = append(x.heads, h)
	x.headOf[h] = i
	return i
}

// metaIndex interns a chunk's metadata: a document's chunks share one map,
// and documents with equal metadata too, so filters are evaluated once per
// distinct map. Entries are shallow copies, so later changes by the caller do
// not leak in.
func (x *index) metaIndex(d int32, m map[string]any) int32 {
	if len(m) == 0 {
		return -1
	}
	if i, ok := x.docMeta[d]; ok && reflect.DeepEqual(x.metas[i], m) {
		return i
	}
	var key string
	if b, err := json.Marshal(m); err == nil { // sorted keys: canonical
		key = string(b)
		if i, ok := x.metaOf[key]; ok && reflect.DeepEqual(x.metas[i], m) {
			x.docMeta[d] = i
			return i
		}
	}
	i := int32(len(x.metas))
	x.metas = append(x.metas, maps.Clone(m))
	x.metaKeys = append(x.metaKeys, key)
	if key != "" {
		x.metaOf[key] = i
	}
	x.docMeta[d] = i
	return i
}

// maybeCompact compacts once dead slots are a quarter of all slots, so
// memory and scan time stay within 4/3 of the live corpus.
func (x *index) maybeCompact() {
	if x.ndead == 0 || x.ndead*4 < len(x.ids) {
		return
	}
	if x.live() == 0 {
		x.state = newState() // and a new dimension may be used
		return
	}
	x.compact()
}

// compact drops dead slots, renumbering the live ones in order, and the
// postings, documents, metadata and headings they referenced.
func (x *index) compact() {
	n, d := len(x.ids), x.dim
	remap := make([]int32, n)
	j, w := 0, uint32(0)
	prevEnd := uint32(0)
	for i := range n {
		start, end := prevEnd, x.tstart[i+1]
		prevEnd = end
		if x.isDead(i) {
			remap[i] = -1
			continue
		}
		remap[i] = int32(j)
		if j != i {
			copy(x.vecs[j*d:(j+1)*d], x.vecs[i*d:(i+1)*d])
			if x.quant {
				copy(x.codes[j*d:(j+1)*d], x.codes[i*d:(i+1)*d])
				x.scales[j] = x.scales[i]
			}
			x.ids[j], x.doc[j], x.pos[j], x.page[j] = x.ids[i], x.doc[i], x.pos[i], x.page[i]
			x.head[j], x.meta[j], x.lens[j] = x.head[i], x.meta[i], x.lens[i]
		}
		w += uint32(copy(x.terms[w:], x.terms[start:end]))
		x.tstart[j+1] = w
		j++
	}
	clear(x.ids[j:])
	x.vecs = shrink(x.vecs[:j*d])
	if x.quant {
		x.codes, x.scales = shrink(x.codes[:j*d]), shrink(x.scales[:j])
	}
	x.ids, x.doc, x.pos, x.page = shrink(x.ids[:j]), shrink(x.doc[:j]), shrink(x.pos[:j]), shrink(x.page[:j])
	x.head, x.meta, x.lens = shrink(x.head[:j]), shrink(x.meta[:j]), shrink(x.lens[:j])
	x.terms, x.tstart = shrink(x.terms[:w]), shrink(x.tstart[:j+1])
	x.dead = make([]uint64, (j+63)/64)
	x.ndead = 0

	for t, list := range x.post {
		k := 0
		for _, p := range list {
			if r := remap[p.slot]; r >= 0 {
				list[k] = posting{slot: r, w: p.w}
				k++
			}
		}
		if k == 0 {
			delete(x.post, t)
		} else {
			x.post[t] = shrink(list[:k])
		}
	}
	for id, s := range x.slotOf {
		x.slotOf[id] = remap[s]
	}

	// Documents, metadata and headings still referenced, renumbered.
	docRemap := renumber(x.doc, len(x.docs))
	metaRemap := renumber(x.meta, len(x.metas))
	headRemap := renumber(x.head, len(x.heads))
	x.docs = compactTable(x.docs, docRemap)
	x.metas = compactTable(x.metas, metaRemap)
	x.metaKeys = compactTable(x.metaKeys, metaRemap)
	x.metaOf = make(map[string]int32, len(x.metas))
	for i, k := range x.metaKeys {
		if k != "" {
			x.metaOf[k] = int32(i)
		}
	}
	x.heads = compactTable(x.heads, headRemap)
	x.docOf = make(map[string]int32, len(x.docs))
	for i, di := range x.docs {
		x.docOf[di.id] = int32(i)
	}
	docMeta := make(map[int32]int32, len(x.docs))
	for dOld, mOld := range x.docMeta {
		if dNew, mNew := docRemap[dOld], metaRemap[mOld]; dNew >= 0 && mNew >= 0 {
			docMeta[dNew] = mNew
		}
	}
	x.docMeta = docMeta
	x.headOf = make(map[string]int32, len(x.heads))
	for i, h := range x.heads {
		x.headOf[h] = int32(i)
	}
}

// renumber maps the table entries refs use (in first-use order) to new
// positions and rewrites refs; entries unused map to -1. Negative refs mean
// none and are kept.
func renumber(refs []int32, size int) []int32 {
	remap := make([]int32, size)
	for i := range remap {
		remap[i] = -1
	}
	next := int32(0)
	for i, r := range refs {
		if r < 0 {
			continue
		}
		if remap[r] < 0 {
			remap[r] = next
			next++
		}
		refs[i] = remap[r]
	}
	return remap
}

func compactTable[T any](table []T, remap []int32) []T {
	n := 0
	for _, r := range remap {
		if r >= 0 {
			n++
		}
	}
	out := make([]T, n)
	for old, r := range remap {
		if r >= 0 {
			out[r] = table[old]
		}
	}
	return out
}

// shrink reallocates a slice using less than half its capacity.
func shrink[T any](s []T) []T {
	if cap(s) > 64 && cap(s) > 2*len(s) {
		return slices.Clone(s)
	}
	return s
}

// trim reallocates the large slices to their length; called after the
// initial load, which grows them by appending.
func (x *index) trim() {
	x.vecs = slices.Clone(x.vecs)
	x.codes = slices.Clone(x.codes)
	x.scales = slices.Clone(x.scales)
	x.terms = slices.Clone(x.terms)
	for t, list := range x.post {
		if cap(list) > len(list)+len(list)/8 {
			x.post[t] = slices.Clone(list)
		}
	}
}

// after reports whether slot a ranks after slot b among equal scores: by
// document id, then position, then chunk id, as knowledge.SortHits orders
// ties, so results do not depend on slot order.
func (x *index) after(a, b int32) bool {
	return cmp.Or(
		strings.Compare(x.docs[x.doc[a]].id, x.docs[x.doc[b]].id),
		cmp.Compare(x.pos[a], x.pos[b]),
		strings.Compare(x.ids[a], x.ids[b]),
	) > 0
}

// hit builds the hit of a slot, without text; the metadata map is the
// index's own and must be copied before it leaves the store.
func (x *index) hit(knowledgeID string, s int32, score float64) knowledge.Hit {
	di := x.docs[x.doc[s]]
	c := knowledge.Chunk{
		ID: x.ids[s], KnowledgeID: knowledgeID, DocumentID: di.id, Document: di.name,
		Index: int(x.pos[s]), Page: int(x.page[s]),
	}
	if h := x.head[s]; h >= 0 {
		c.Heading = x.heads[h]
	}
	if m := x.meta[s]; m >= 0 {
		c.Metadata = x.metas[m]
	}
	return knowledge.Hit{Chunk: c, Score: score}
}
