// runner.cpp — running compiled programs over batches; batched lookups; text conveniences.
#include "fn_common.hpp"

#include <algorithm>

#include <rapidjson/stringbuffer.h>

namespace sluice::dtl {

// ---- RunState: per-batch lookup cache --------------------------------------------------------
void RunState::clear() {
    cache.clear();
    docs.clear();
    missing = false;
    stats = RunStats();
    scratch.SetNull();
    scratch.GetAllocator().Clear();
}

const std::vector<const Json*>* RunState::find(const std::string& dataset, const std::string& property,
                                               const Json& key) {
    auto [it, inserted] = cache.try_emplace({dataset, property});
    LookupTable& t = it->second;
    if (inserted) {
        t.dataset = dataset;
        t.property = property;
        t.path = split_path(property);
        t.by_key.reserve(1024);
    }
    auto [entry_it, fresh] = t.by_key.try_emplace(key_text(key));
    LookupTable::Entry& entry = entry_it->second;
    if (entry.fetched) return &entry.entities;
    if (!entry.pending) {
        entry.pending = true;
        t.pending.push_back(&entry);
        auto* copy = new (scratch.GetAllocator().Malloc(sizeof(Json))) Json();
        deep_copy(*copy, key, scratch.GetAllocator());
        t.pending_values.push_back(copy);
    }
    (void)fresh;
    missing = true;
    return nullptr;
}

bool RunState::fetch_pending() {
    bool any = false;
    for (auto& [name, t] : cache) {
        if (t.pending.empty()) continue;
        any = true;
        auto doc = std::make_unique<rapidjson::Document>();
        doc->SetArray();
        if (provider) {
            rapidjson::Document values(rapidjson::kArrayType);
            values.Reserve(static_cast<rapidjson::SizeType>(t.pending_values.size()), values.GetAllocator());
            for (const Json* v : t.pending_values) {
                Json copy;
                deep_copy(copy, *v, values.GetAllocator());
                values.PushBack(copy, values.GetAllocator());
            }
            provider->lookup(t.dataset, t.property, values, *doc);
            ++stats.lookups;
            stats.lookup_keys += t.pending.size();
        }
        if (doc->IsArray()) {
            std::vector<const Json*> vals;
            for (const Json& e : doc->GetArray()) {
                if (!e.IsObject()) continue;
                auto del = e.FindMember("_deleted");
                if (del != e.MemberEnd() && del->value.IsTrue()) continue;  // never joined
                vals.clear();
                path_values(e, t.path, vals);
                for (const Json* v : vals) {
                    auto found = t.by_key.find(key_text(*v));
                    if (found == t.by_key.end() || !found->second.pending) continue;
                    auto& list = found->second.entities;
                    if (list.empty() || list.back() != &e) list.push_back(&e);
                }
            }
        }
        for (LookupTable::Entry* entry : t.pending) {
            entry->pending = false;
            entry->fetched = true;
        }
        t.pending.clear();
        t.pending_values.clear();
        docs.push_back(std::move(doc));
    }
    return any;
}

// ---- Runner ----------------------------------------------------------------------------------
namespace {
// A pool whose first block is kept from batch to batch and grows to what a batch needed (up to
// 64 MiB), so a steady stream of batches allocates nothing, while an idle small pipe holds little.
class Arena {
public:
    Alloc& get() { return *alloc_; }
    // Releases everything allocated since the last reset; enlarges the kept block if the last
    // batch overflowed it.
    void reset() {
        size_t used = alloc_->Capacity();
        if (used > size_ && size_ < kMax) {
            while (size_ < used && size_ < kMax) size_ *= 2;
            alloc_.reset();
            buffer_.reset(new char[size_]);
            alloc_ = std::make_unique<Alloc>(buffer_.get(), size_, kChunk);
        } else {
            alloc_->Clear();
        }
    }

private:
    static constexpr size_t kMax = 64u << 20;
    static constexpr size_t kChunk = 256u << 10;
    size_t size_ = 64u << 10;
    std::unique_ptr<char[]> buffer_{new char[size_]};
    std::unique_ptr<Alloc> alloc_ = std::make_unique<Alloc>(buffer_.get(), size_, kChunk);
};
}  // namespace

struct Runner::State {
    std::shared_ptr<const Program> program;
    RunState rs;
    Arena arena;
    rapidjson::StringBuffer text;
    const Json* B = nullptr;
};

struct BatchInput::Impl {
    std::string buffer;
    Arena values, stack;
    std::unique_ptr<InputDocument> doc;
};
BatchInput::BatchInput() : impl_(std::make_unique<Impl>()) {}
BatchInput::~BatchInput() = default;
const Json& BatchInput::parse(std::string_view text) {
    Impl& m = *impl_;
    m.doc.reset();
    m.values.reset();
    m.stack.reset();
    m.doc = std::make_unique<InputDocument>(&m.values.get(), 64 * 1024, &m.stack.get());
    m.buffer.assign(text.data(), text.size());
    m.buffer.push_back('\0');
    parse_json_insitu(m.buffer.data(), *m.doc);
    return *m.doc;
}

Runner::Runner(std::shared_ptr<const Program> program, LookupProvider* lookups) : state_(std::make_unique<State>()) {
    state_->program = std::move(program);
    state_->rs.provider = lookups;
}
Runner::~Runner() = default;
void Runner::set_bindings(const Json* bindings) { state_->B = bindings; }
const RunStats& Runner::stats() const { return state_->rs.stats; }

namespace {
struct Slot {
    bool done = false;
    Flow flow = Flow::Next;
    bool passthrough = false;
    Json target;
    std::vector<Json> created;
};

std::string id_text(const Json& entity) {
    if (entity.IsObject()) {
        auto it = entity.FindMember("_id");
        if (it != entity.MemberEnd()) return serialize(it->value);
    }
    return "(no _id)";
}
}  // namespace

size_t Runner::run(const Json& input, std::string& out) {
    size_t count = 0;
    std::string_view text = run(input, count);
    out.append(text.data(), text.size());
    return count;
}

std::string_view Runner::run(const Json& input, size_t& count) {
    State& st = *state_;
    const Program& prog = *st.program;
    RunState& rs = st.rs;
    rs.clear();
    st.arena.reset();
    Alloc& pool = st.arena.get();
    if (!input.IsArray()) throw RuntimeError("the input batch must be a JSON array of entities");
    const rapidjson::SizeType n = input.Size();
    rs.stats.input = n;
    std::vector<Slot> slots(n);
    std::vector<rapidjson::SizeType> todo(n), next;
    for (rapidjson::SizeType i = 0; i < n; ++i) todo[i] = i;
    const Rule& rule = prog.rules[static_cast<size_t>(prog.default_rule)];
    const Options& opt = prog.options;

    while (!todo.empty()) {
        ++rs.stats.passes;
        next.clear();
        for (rapidjson::SizeType i : todo) {
            const Json& src = input[i];
            Slot& slot = slots[i];
            if (!src.IsObject()) throw RuntimeError("input entity #" + std::to_string(i) + " is not an object");
            if (!opt.trigger_key.empty()) {
                auto tk = src.FindMember(Json(rapidjson::StringRef(opt.trigger_key.data(), opt.trigger_key.size())));
                bool hit = tk != src.MemberEnd() && tk->value.IsString() && wildcard_match(opt.trigger_value, sv(tk->value));
                if (!hit) {
                    slot.passthrough = true;
                    slot.done = true;
                    continue;
                }
            }
            slot.target.SetObject();
            slot.created.clear();
            Frame frame{&src, &slot.target, nullptr};
            Ctx c;
            c.frame = &frame;
            c.root = &frame;
            c.B = st.B;
            c.a = &pool;
            c.rs = &rs;
            c.prog = &prog;
            rs.missing = false;
            rs.depth = 0;
            rs.created = &slot.created;
            try {
                slot.flow = exec_steps(rule.steps, c);
            } catch (const std::exception&) {
                rs.created = nullptr;
                if (rs.missing) {  // decided on incomplete joins: retry once they are fetched
                    next.push_back(i);
                    continue;
                }
                throw;
            }
            rs.created = nullptr;
            if (rs.missing) {
                next.push_back(i);
                continue;
            }
            slot.done = true;
        }
        if (next.empty()) break;
        if (!rs.fetch_pending()) break;  // nothing left to fetch: accept what we have
        todo.swap(next);
    }

    // Assemble the output in input order.
    Json array(rapidjson::kArrayType);
    for (rapidjson::SizeType i = 0; i < n; ++i) {
        Slot& slot = slots[i];
        const Json& src = input[i];
        if (slot.passthrough) {
            Json copy;
            shallow_copy(copy, src, pool);
            array.PushBack(copy, pool);
            ++rs.stats.output;
            continue;
        }
        Json& t = slot.target;
        if (slot.flow == Flow::Next || slot.flow == Flow::Filter) {
            if (!opt.expression_mode) {
                auto del = src.FindMember("_deleted");
                if (del != src.MemberEnd() && del->value.IsTrue() && !t.HasMember("_deleted"))
                    t.AddMember("_deleted", true, pool);
            }
            if (slot.flow == Flow::Filter) {
                ++rs.stats.filtered;
                if (t.FindMember("_id") == t.MemberEnd()) {
                    auto id = src.FindMember("_id");
                    if (id != src.MemberEnd()) {
                        Json v;
                        shallow_copy(v, id->value, pool);
                        t.AddMember("_id", v, pool);
                    }
                }
                Json flag(true);
                set_member(t, "_filtered", flag, pool);
            }
            if (opt.id_required) {
                auto id = t.FindMember("_id");
                if (id == t.MemberEnd() || !id->value.IsString())
                    throw RuntimeError("the output entity for input " + id_text(src) +
                                       " has no string \"_id\" (copy it with [\"copy\", \"_id\"] or add one)");
            }
            array.PushBack(t, pool);
            ++rs.stats.output;
        } else {
            ++rs.stats.discarded;
        }
        for (Json& e : slot.created) {
            if (opt.id_required) {
                auto id = e.FindMember("_id");
                if (id == e.MemberEnd() || !id->value.IsString())
                    throw RuntimeError("an entity made by \"create\" for input " + id_text(src) +
                                       " has no string \"_id\"");
            }
            array.PushBack(e, pool);
            ++rs.stats.created;
            ++rs.stats.output;
        }
    }
    st.text.Clear();
    write_json(array, st.text);
    count = array.Size();
    return std::string_view(st.text.GetString(), st.text.GetSize());
}

// ---- expressions -----------------------------------------------------------------------------
void evaluate(const Expression& expression, const Json& source, std::string& out, LookupProvider* lookups) {
    RunState rs;
    rs.provider = lookups;
    Alloc pool;
    for (int pass = 0;; ++pass) {
        Json target(rapidjson::kObjectType);
        Frame frame{&source, &target, nullptr};
        Ctx c;
        c.frame = &frame;
        c.root = &frame;
        c.a = &pool;
        c.rs = &rs;
        c.prog = expression.program.get();
        rs.missing = false;
        Json tmp;
        const Json* r = nullptr;
        try {
            r = ev(expression.root, c, tmp);
        } catch (const std::exception&) {
            if (!rs.missing || !rs.fetch_pending()) throw;
            continue;
        }
        if (rs.missing && rs.fetch_pending()) continue;
        serialize(*r, out);
        return;
    }
}

std::string evaluate_text(std::string_view expression_json, std::string_view source_json, LookupProvider* lookups) {
    rapidjson::Document expr, source;
    parse_json(expression_json, expr);
    parse_json(source_json, source);
    auto e = compile_expression(expr);
    std::string out;
    evaluate(*e, source, out, lookups);
    return out;
}

std::string run_text(std::string_view transform_json, std::string_view entities_json, LookupProvider* lookups) {
    rapidjson::Document config, input;
    parse_json(transform_json, config);
    parse_json(entities_json, input);
    auto program = compile_transform(config);
    Runner runner(program, lookups);
    std::string out;
    runner.run(input, out);
    return out;
}

}  // namespace sluice::dtl
