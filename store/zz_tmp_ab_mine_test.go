package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestTmpABMine(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wq := db.wq
	ctx := t.Context()
	i := 0
	var tot [2]time.Duration
	var n [2]int
	for round := range 200 {
		v := round % 2
		if v == 0 {
			db.wq = nil
		} else {
			db.wq = wq
		}
		start := time.Now()
		for range 100 {
			id := fmt.Sprint(i)
			i++
			s := &Session{ID: "s" + id, Type: SessionAgent, ComponentID: "bench", UserID: "u"}
			r := &Run{ID: "r" + id, Input: "What is the capital of France?", Model: "gpt-x", Provider: "openai"}
			if err := db.StartRun(ctx, s, r); err != nil {
				t.Fatal(err)
			}
			r.Status = RunCompleted
			if err := db.FinishRun(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		tot[v] += time.Since(start)
		n[v] += 100
	}
	db.wq = wq
	t.Logf("direct %v/run, writer %v/run", tot[0]/time.Duration(n[0]), tot[1]/time.Duration(n[1]))
}
