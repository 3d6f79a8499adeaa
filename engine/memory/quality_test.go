package memory_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/memory"
)

// qualityMemories are what four users told an assistant over time: 56
// memories, with the topics an extractor would give them.
var qualityMemories = map[string][]struct {
	text   string
	topics []string
}{
	"alice": {
		{"Is allergic to peanuts and carries an EpiPen", []string{"health", "food"}},
		{"Works as a pediatric nurse on night shifts at St. Mary's hospital", []string{"work"}},
		{"Has a golden retriever named Biscuit", []string{"pets"}},
		{"Prefers aisle seats on long flights", []string{"travel", "preferences"}},
		{"Is training for the Berlin marathon in September", []string{"fitness", "goals"}},
		{"Her daughter Maya starts primary school next year", []string{"family"}},
		{"Drinks oat milk in her coffee, never dairy", []string{"food", "preferences"}},
		{"Is learning Spanish with a tutor on Tuesday evenings", []string{"learning"}},
		{"Lives in a flat in Leeds with her partner Tom", []string{"home", "family"}},
		{"Wants to save for a deposit on a house by 2027", []string{"finance", "goals"}},
		{"Reads mostly historical fiction, loved Wolf Hall", []string{"books", "preferences"}},
		{"Gets migraines when she sleeps less than six hours", []string{"health"}},
		{"Her birthday is on the 14th of March", []string{"personal"}},
		{"Plays the cello in a community orchestra", []string{"hobbies", "music"}},
	},
	"bob": {
		{"Is a backend engineer who writes Go at a fintech startup", []string{"work"}},
		{"Is lactose intolerant", []string{"health", "food"}},
		{"Supports Benfica and watches every home match", []string{"sports"}},
		{"Lives in Lisbon and commutes by bicycle", []string{"home", "transport"}},
		{"Has two cats, Pixel and Byte", []string{"pets"}},
		{"Is saving to buy an electric car next spring", []string{"finance", "goals"}},
		{"Prefers dark mode and vim keybindings in every editor", []string{"preferences", "tools"}},
		{"His partner Ana is a architect", []string{"family"}},
		{"Takes medication for high blood pressure every morning", []string{"health"}},
		{"Plans a surfing trip to Morocco in October", []string{"travel"}},
		{"Is vegetarian since 2019", []string{"food"}},
		{"Speaks Portuguese, English and some German", []string{"languages"}},
		{"Hates being called before 9 am", []string{"preferences"}},
		{"Is building a home lab with a Raspberry Pi cluster", []string{"hobbies"}},
	},
	"chen": {
		{"Teaches high school chemistry in Vancouver", []string{"work"}},
		{"Is gluten intolerant (coeliac disease)", []string{"health", "food"}},
		{"Has a son, Leo, who plays ice hockey", []string{"family", "sports"}},
		{"Drives a 2015 Honda Civic that needs new brakes", []string{"car"}},
		{"Likes jazz, especially Bill Evans", []string{"music", "preferences"}},
		{"Is renovating the kitchen of his house this summer", []string{"home"}},
		{"Wants to run a half marathon under two hours", []string{"fitness", "goals"}},
		{"Is afraid of flying and prefers trains", []string{"travel", "preferences"}},
		{"Has a pension with a teachers' plan and a savings account at RBC", []string{"finance"}},
		{"Grows tomatoes and basil on his balcony", []string{"hobbies", "garden"}},
		{"His wife Mei is a pharmacist", []string{"family"}},
		{"Is colour blind (red-green)", []string{"health"}},
		{"Speaks Mandarin at home", []string{"languages"}},
		{"Volunteers at the food bank on Saturdays", []string{"community"}},
	},
	"dana": {
		{"Is a freelance graphic designer working from home", []string{"work"}},
		{"Is pregnant, due in November", []string{"health", "family"}},
		{"Has a rescue greyhound called Pepper", []string{"pets"}},
		{"Uses a Mac with Figma and the Adobe suite", []string{"tools"}},
		{"Is allergic to cats", []string{"health"}},
		{"Lives in Melbourne", []string{"home"}},
		{"Prefers email to phone calls for client work", []string{"preferences", "work"}},
		{"Is paying off a student loan", []string{"finance"}},
		{"Does yoga three times a week", []string{"fitness"}},
		{"Loves Japanese food, especially ramen", []string{"food", "preferences"}},
		{"Her brother Sam lives in Auckland", []string{"family"}},
		{"Wants to visit Iceland to see the northern lights", []string{"travel", "goals"}},
		{"Is vegan on weekdays", []string{"food"}},
		{"Charges 90 dollars an hour for design work", []string{"work", "finance"}},
	},
}

// qualityQuestions are questions an agent would recall memories for,
// worded as a user or an agent would ask them, not as the memory says it.
var qualityQuestions = []struct {
	user, question, want string
}{
	{"alice", "Can I suggest a satay dish for her dinner, or is there something she can't eat?", "Is allergic to peanuts and carries an EpiPen"},
	{"alice", "what does she do for a living", "Works as a pediatric nurse on night shifts at St. Mary's hospital"},
	{"alice", "What's the name of her dog?", "Has a golden retriever named Biscuit"},
	{"alice", "Book me a seat for my flight to Toronto", "Prefers aisle seats on long flights"},
	{"alice", "Which race is she preparing for?", "Is training for the Berlin marathon in September"},
	{"alice", "what milk should I order with her latte", "Drinks oat milk in her coffee, never dairy"},
	{"bob", "Recommend a dessert; any dairy issues?", "Is lactose intolerant"},
	{"bob", "which football club does he follow", "Supports Benfica and watches every home match"},
	{"bob", "What are his cats called?", "Has two cats, Pixel and Byte"},
	{"bob", "set up my editor theme the way I like it", "Prefers dark mode and vim keybindings in every editor"},
	{"bob", "When is a good time to phone him?", "Hates being called before 9 am"},
	{"bob", "Does he take any medication?", "Takes medication for high blood pressure every morning"},
	{"chen", "can he eat regular bread or pasta", "Is gluten intolerant (coeliac disease)"},
	{"chen", "what sport does his son play", "Has a son, Leo, who plays ice hockey"},
	{"chen", "His car makes a noise when braking, what car is it?", "Drives a 2015 Honda Civic that needs new brakes"},
	{"chen", "Plan his trip to Montreal: should we book a flight?", "Is afraid of flying and prefers trains"},
	{"chen", "what is he growing in the garden", "Grows tomatoes and basil on his balcony"},
	{"dana", "When is the baby due?", "Is pregnant, due in November"},
	{"dana", "how should I contact her about the client project", "Prefers email to phone calls for client work"},
	{"dana", "What is her hourly rate?", "Charges 90 dollars an hour for design work"},
}

// recallFloor is just under what TestRecallQuality measures with the local
// embedder (see its log), so a change that makes recall worse fails.
const (
	recallAt5Floor = 0.65
	mrrFloor       = 0.60
)

// TestRecallQuality measures recall@5 and the mean reciprocal rank of the
// expected memory over qualityQuestions, with the default stack (the local
// embedder, the embedded store, hybrid search), each user asking about
// their own memories among everyone's.
func TestRecallQuality(t *testing.T) {
	e := newEnv(t, memory.Options{})
	n := 0
	for _, user := range []string{"alice", "bob", "chen", "dana"} {
		for _, m := range qualityMemories[user] {
			e.add(t, user, "", m.text, m.topics...)
			n++
		}
	}
	require.GreaterOrEqual(t, n, 50)
	require.GreaterOrEqual(t, len(qualityQuestions), 20)

	hits, rr := 0, 0.0
	for _, q := range qualityQuestions {
		got, err := e.svc.Recall(t.Context(), q.user, "", q.question, 5)
		require.NoError(t, err)
		rank := 0
		for i, m := range got {
			require.Equal(t, q.user, m.UserID)
			if m.Memory == q.want && rank == 0 {
				rank = i + 1
			}
		}
		if rank > 0 {
			hits++
			rr += 1 / float64(rank)
		}
		if rank != 1 {
			t.Logf("%s: %q: expected memory at rank %d (0: not in the top 5); top: %q", q.user, q.question, rank, texts(got)[:min(2, len(got))])
		}
	}
	recall, mrr := float64(hits)/float64(len(qualityQuestions)), rr/float64(len(qualityQuestions))
	t.Logf("recall@5 = %.2f, MRR = %.3f over %d questions and %d memories", recall, mrr, len(qualityQuestions), n)
	require.GreaterOrEqual(t, recall, recallAt5Floor, fmt.Sprintf("recall@5 %.2f", recall))
	require.GreaterOrEqual(t, mrr, mrrFloor, fmt.Sprintf("MRR %.3f", mrr))
}
