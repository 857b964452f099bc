// fn_lists.cpp — lists, sets, ordering, aggregation, tuples (reference §4.3 "Lists", "Sets").
#include "fn_common.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace sluice::dtl {

namespace {

// The elements of a value: a list's elements, nothing for null, else the value itself.
std::vector<const Json*> items(const Json* v) {
    std::vector<const Json*> out;
    if (v->IsArray()) {
        out.reserve(v->Size());
        for (const Json& e : v->GetArray()) out.push_back(&e);
    } else if (!v->IsNull()) {
        out.push_back(v);
    }
    return out;
}

const Json* make_list(const std::vector<const Json*>& v, Ctx& c, Json& tmp) {
    Json list(rapidjson::kArrayType);
    list.Reserve(static_cast<rapidjson::SizeType>(v.size()), *c.a);
    for (const Json* e : v) push_copy(list, *e, c);
    tmp = std::move(list);
    return &tmp;
}

const Json* f_list(const Node& n, Ctx& c, Json& tmp) {
    Json list(rapidjson::kArrayType);
    list.Reserve(static_cast<rapidjson::SizeType>(n.args.size()), *c.a);
    for (const Node& a : n.args) {
        Json t, v;
        const Json* r = ev(a, c, t);
        if (r == &t) v = std::move(t);
        else shallow_copy(v, *r, *c.a);
        list.PushBack(v, *c.a);
    }
    tmp = std::move(list);
    return &tmp;
}
const Json* f_combine(const Node& n, Ctx& c, Json& tmp) {
    Json list(rapidjson::kArrayType);
    for (const Node& a : n.args) {
        Json t;
        append_flat(list, *ev(a, c, t), c);
    }
    tmp = std::move(list);
    return &tmp;
}
const Json* f_flatten(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[0], c, t);
    Json list(rapidjson::kArrayType);
    for (const Json* e : items(v)) append_flat(list, *e, c);
    tmp = std::move(list);
    return &tmp;
}
const Json* f_insert(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    int64_t idx;
    if (!int_arg(ev(n.args[0], c, t1), idx)) return &kNull;
    std::vector<const Json*> list = items(ev(n.args[1], c, t2));
    const Json* obj = ev(n.args[2], c, t3);
    int64_t size = static_cast<int64_t>(list.size());
    if (idx < 0) idx = std::max<int64_t>(0, size + idx);
    idx = std::min(idx, size);
    list.insert(list.begin() + idx, obj);
    return make_list(list, c, tmp);
}
const Json* f_range(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3;
    int64_t start = 0, stop, step = 1;
    if (n.args.size() == 1) {
        if (!int_arg(ev(n.args[0], c, t1), stop)) return &kNull;
    } else {
        if (!int_arg(ev(n.args[0], c, t1), start) || !int_arg(ev(n.args[1], c, t2), stop)) return &kNull;
        if (n.args.size() > 2 && (!int_arg(ev(n.args[2], c, t3), step) || step == 0)) return &kNull;
    }
    Json list(rapidjson::kArrayType);
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
        if (list.Size() >= 1000000) throw RuntimeError("range: more than 1 000 000 elements");
        list.PushBack(Json(static_cast<int64_t>(i)), *c.a);
        if (__builtin_add_overflow(i, step, &i)) break;
    }
    tmp = std::move(list);
    return &tmp;
}
const Json* f_enumerate(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    int64_t start = 0;
    if (n.args.size() == 2 && !int_arg(ev(n.args[0], c, t1), start)) return &kNull;
    Json list(rapidjson::kArrayType);
    for (const Json* e : items(ev(n.args.back(), c, t2))) {
        Json d(rapidjson::kObjectType), v;
        shallow_copy(v, *e, *c.a);
        d.AddMember("key", Json(start++), *c.a);
        d.AddMember("value", v, *c.a);
        list.PushBack(d, *c.a);
    }
    tmp = std::move(list);
    return &tmp;
}
const Json* f_first(const Node& n, Ctx& c, Json& tmp) {
    const Json* v = ev(n.args[0], c, tmp);
    if (!v->IsArray()) return v;
    return v->Empty() ? &kNull : own(&(*v)[0], tmp, c);
}
const Json* f_last(const Node& n, Ctx& c, Json& tmp) {
    const Json* v = ev(n.args[0], c, tmp);
    if (!v->IsArray()) return v;
    return v->Empty() ? &kNull : own(&(*v)[v->Size() - 1], tmp, c);
}
const Json* f_nth(const Node& n, Ctx& c, Json& tmp) {
    Json t1;
    int64_t idx;
    if (!int_arg(ev(n.args[0], c, t1), idx)) return &kNull;
    Json t2;
    std::vector<const Json*> list = items(ev(n.args[1], c, t2));
    int64_t size = static_cast<int64_t>(list.size());
    if (idx < 0) idx += size;
    if (idx < 0 || idx >= size) return &kNull;
    return own(list[static_cast<size_t>(idx)], tmp, c);
}
// Python-style slice bounds.
void slice_bounds(int64_t size, const Json* start_v, const Json* end_v, int64_t step, int64_t& start, int64_t& end) {
    auto norm = [&](const Json* v, int64_t dflt, bool is_start) {
        int64_t x;
        if (!v || v->IsNull() || !int_arg(v, x)) return dflt;
        if (x < 0) x += size;
        if (step > 0) return std::clamp<int64_t>(x, 0, size);
        return std::clamp<int64_t>(x, -1, size - 1);
        (void)is_start;
    };
    start = norm(start_v, step > 0 ? 0 : size - 1, true);
    end = norm(end_v, step > 0 ? size : -1, false);
}
const Json* f_slice(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2, t3, t4;
    const Json* s = ev(n.args[0], c, t1);
    const Json* e = n.args.size() >= 3 ? ev(n.args[1], c, t2) : nullptr;
    int64_t step = 1;
    if (n.args.size() == 4 && (!int_arg(ev(n.args[2], c, t3), step) || step == 0)) return &kNull;
    const Json* v = ev(n.args.back(), c, t4);
    if (is_plain_string(*v)) {  // strings slice too
        std::vector<uint32_t> cps = utf8_decode(sv(*v));
        int64_t start, end;
        slice_bounds(static_cast<int64_t>(cps.size()), s, e, step, start, end);
        std::string out;
        for (int64_t i = start; step > 0 ? i < end : i > end; i += step) utf8_append(out, cps[static_cast<size_t>(i)]);
        set_text(tmp, out, c);
        return &tmp;
    }
    std::vector<const Json*> list = items(v), picked;
    int64_t start, end;
    slice_bounds(static_cast<int64_t>(list.size()), s, e, step, start, end);
    for (int64_t i = start; step > 0 ? i < end : i > end; i += step) picked.push_back(list[static_cast<size_t>(i)]);
    return make_list(picked, c, tmp);
}

// ---- mapping -------------------------------------------------------------------------------
const Json* f_map(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[1], c, t);
    Json list(rapidjson::kArrayType);
    for (const Json* e : items(v)) {
        Json r, o;
        const Json* x = eval_with(n.args[0], c, *e, r);
        if (x == &r) o = std::move(r);
        else shallow_copy(o, *x, *c.a);
        list.PushBack(o, *c.a);
    }
    tmp = std::move(list);
    return &tmp;
}
const Json* f_filter(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[1], c, t);
    std::vector<const Json*> kept;
    for (const Json* e : items(v)) {
        Json r;
        if (truthy(*eval_with(n.args[0], c, *e, r))) kept.push_back(e);
    }
    return make_list(kept, c, tmp);
}
const Json* f_map_dict(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[2], c, t);
    auto one = [&](const Json& d, Json& out) {
        if (!d.IsObject()) return false;
        out.SetObject();
        for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) {
            Json rk, rv, val;
            Json key;
            shallow_copy(key, it->name, *c.a);
            const Json* k = eval_with(n.args[0], c, key, rk);
            if (!k->IsString()) continue;
            std::string keytext(sv(*k));
            const Json* x = eval_with(n.args[1], c, it->value, rv);
            if (x == &rv) val = std::move(rv);
            else shallow_copy(val, *x, *c.a);
            set_member(out, keytext, val, *c.a);
        }
        return true;
    };
    return map_values(v, c, tmp, one);
}
const Json* f_map_values(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[1], c, t);
    Json list(rapidjson::kArrayType);
    for (const Json* d : items(v)) {
        if (!d->IsObject()) continue;
        for (auto it = d->MemberBegin(); it != d->MemberEnd(); ++it) {
            Json r, o;
            const Json* x = eval_with(n.args[0], c, it->value, r);
            if (x == &r) o = std::move(r);
            else shallow_copy(o, *x, *c.a);
            list.PushBack(o, *c.a);
        }
    }
    tmp = std::move(list);
    return &tmp;
}

// ---- grouping ------------------------------------------------------------------------------
const Json* f_group(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[2], c, t);
    std::unordered_map<std::string, size_t> index;
    Json list(rapidjson::kArrayType);
    for (const Json* e : items(v)) {
        Json rk, rv, key, val;
        const Json* k = eval_with(n.args[0], c, *e, rk);
        std::string kt = key_text(*k);
        const Json* x = eval_with(n.args[1], c, *e, rv);
        if (x == &rv) val = std::move(rv);
        else shallow_copy(val, *x, *c.a);
        auto found = index.find(kt);
        if (found == index.end()) {
            Json pair(rapidjson::kArrayType), vals(rapidjson::kArrayType);
            if (k == &rk) key = std::move(rk);
            else shallow_copy(key, *k, *c.a);
            pair.PushBack(key, *c.a);
            pair.PushBack(vals, *c.a);
            index[kt] = list.Size();
            list.PushBack(pair, *c.a);
            found = index.find(kt);
        }
        list[static_cast<rapidjson::SizeType>(found->second)][1].PushBack(val, *c.a);
    }
    tmp = std::move(list);
    return &tmp;
}
// group-by [KEYFUNC] [STRFUNC] VALUES → {key-string: [values]}
const Json* f_group_by(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args.back(), c, t);
    Json obj(rapidjson::kObjectType);
    for (const Json* e : items(v)) {
        Json rk, rs;
        const Json* k = n.args.size() >= 2 ? eval_with(n.args[0], c, *e, rk) : e;
        std::string key;
        if (n.args.size() == 3) {
            const Json* s = eval_with(n.args[1], c, *k, rs);
            key = to_text(*s);
        } else {
            key = k->IsString() && type_of(*k) == Type::String ? std::string(sv(*k)) : serialize(*k, true);
        }
        auto it = obj.FindMember(Json(rapidjson::StringRef(key.data(), key.size())));
        Json val;
        shallow_copy(val, *e, *c.a);
        if (it == obj.MemberEnd()) {
            Json list(rapidjson::kArrayType), name;
            list.PushBack(val, *c.a);
            set_text(name, key, c);
            obj.AddMember(name, list, *c.a);
        } else {
            it->value.PushBack(val, *c.a);
        }
    }
    tmp = std::move(obj);
    return &tmp;
}

// ---- ordering ------------------------------------------------------------------------------
// Elements with their sort keys ([FUNC] VALUES).
struct Keyed {
    const Json* value;
    const Json* key;
};
std::vector<Keyed> keyed(const Node& n, Ctx& c, const Json* v, std::deque<Json>& keep) {
    std::vector<Keyed> out;
    for (const Json* e : items(v)) {
        if (n.args.size() == 2) {
            keep.emplace_back();
            Json& r = keep.back();
            const Json* k = eval_with(n.args[0], c, *e, r);
            if (k != &r) shallow_copy(r, *k, *c.a);
            out.push_back({e, &r});
        } else {
            out.push_back({e, e});
        }
    }
    return out;
}
template <bool Desc>
const Json* f_sorted(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    std::deque<Json> keep;
    auto list = keyed(n, c, ev(n.args.back(), c, t), keep);
    std::stable_sort(list.begin(), list.end(), [](const Keyed& a, const Keyed& b) {
        int r = compare(*a.key, *b.key);
        return Desc ? r > 0 : r < 0;
    });
    std::vector<const Json*> out;
    for (const Keyed& k : list) out.push_back(k.value);
    return make_list(out, c, tmp);
}
const Json* f_reversed(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    std::vector<const Json*> list = items(ev(n.args[0], c, t));
    std::reverse(list.begin(), list.end());
    return make_list(list, c, tmp);
}
const Json* f_distinct(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    std::deque<Json> keep;
    auto list = keyed(n, c, ev(n.args.back(), c, t), keep);
    std::unordered_set<std::string> seen;
    std::vector<const Json*> out;
    for (const Keyed& k : list)
        if (seen.insert(key_text(*k.key)).second) out.push_back(k.value);
    return make_list(out, c, tmp);
}
template <bool Max>
const Json* f_minmax(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    std::deque<Json> keep;
    auto list = keyed(n, c, ev(n.args.back(), c, t), keep);
    const Keyed* best = nullptr;
    for (const Keyed& k : list) {
        if (k.key->IsNull()) continue;
        if (!best) { best = &k; continue; }
        int r = compare(*k.key, *best->key);
        if (Max ? r > 0 : r < 0) best = &k;
    }
    return best ? own(best->value, tmp, c) : &kNull;
}

// ---- aggregation ---------------------------------------------------------------------------
const Json* f_count(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[0], c, t);
    tmp.SetInt64(v->IsArray() ? v->Size() : v->IsNull() ? 0 : 1);
    return &tmp;
}
const Json* f_sum(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    Num acc;
    acc.k = Num::I;
    acc.i = 0;
    for (const Json* e : items(ev(n.args[0], c, t))) {
        Num x;
        if (!Num::from(*e, x)) continue;
        acc = num_add(acc, x);
    }
    acc.to_json(tmp, *c.a);
    return &tmp;
}
const Json* f_in(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    std::vector<const Json*> values = items(ev(n.args[0], c, t1)), pool = items(ev(n.args[1], c, t2));
    if (values.empty()) return ret_bool(tmp, false);
    std::unordered_set<std::string> have;
    for (const Json* p : pool) have.insert(key_text(*p));
    for (const Json* v : values)
        if (!have.count(key_text(*v))) return ret_bool(tmp, false);
    return ret_bool(tmp, true);
}

// ---- sets (order preserving) -----------------------------------------------------------------
const Json* f_union(const Node& n, Ctx& c, Json& tmp) {
    std::unordered_set<std::string> seen;
    std::vector<const Json*> out;
    std::deque<Json> keep;
    for (const Node& a : n.args) {
        keep.emplace_back();
        for (const Json* e : items(own(ev(a, c, keep.back()), keep.back(), c)))
            if (seen.insert(key_text(*e)).second) out.push_back(e);
    }
    return make_list(out, c, tmp);
}
const Json* f_intersection(const Node& n, Ctx& c, Json& tmp) {
    std::deque<Json> keep;
    std::vector<std::vector<const Json*>> lists;
    for (const Node& a : n.args) {
        keep.emplace_back();
        lists.push_back(items(own(ev(a, c, keep.back()), keep.back(), c)));
    }
    std::vector<std::unordered_set<std::string>> sets(lists.size());
    for (size_t i = 1; i < lists.size(); ++i)
        for (const Json* e : lists[i]) sets[i].insert(key_text(*e));
    std::unordered_set<std::string> seen;
    std::vector<const Json*> out;
    for (const Json* e : lists[0]) {
        std::string k = key_text(*e);
        bool all = true;
        for (size_t i = 1; i < lists.size() && all; ++i) all = sets[i].count(k) > 0;
        if (all && seen.insert(k).second) out.push_back(e);
    }
    return make_list(out, c, tmp);
}
const Json* f_difference(const Node& n, Ctx& c, Json& tmp) {
    std::deque<Json> keep;
    keep.emplace_back();
    std::vector<const Json*> first = items(own(ev(n.args[0], c, keep.back()), keep.back(), c));
    std::unordered_set<std::string> remove;
    for (size_t i = 1; i < n.args.size(); ++i) {
        keep.emplace_back();
        for (const Json* e : items(ev(n.args[i], c, keep.back()))) remove.insert(key_text(*e));
    }
    std::unordered_set<std::string> seen;
    std::vector<const Json*> out;
    for (const Json* e : first) {
        std::string k = key_text(*e);
        if (!remove.count(k) && seen.insert(k).second) out.push_back(e);
    }
    return make_list(out, c, tmp);
}
const Json* f_intersects(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    std::vector<const Json*> a = items(ev(n.args[0], c, t1)), b = items(ev(n.args[1], c, t2));
    std::unordered_set<std::string> have;
    for (const Json* e : b) have.insert(key_text(*e));
    for (const Json* e : a)
        if (have.count(key_text(*e))) return ret_bool(tmp, true);
    return ret_bool(tmp, false);
}

// ---- tuples: the Cartesian product of the arguments (nulls dropped) ----------------------------
const Json* f_tuples(const Node& n, Ctx& c, Json& tmp) {
    std::deque<Json> keep;
    std::vector<std::vector<const Json*>> lists;
    for (const Node& a : n.args) {
        keep.emplace_back();
        std::vector<const Json*> l;
        for (const Json* e : items(own(ev(a, c, keep.back()), keep.back(), c)))
            if (!e->IsNull()) l.push_back(e);
        if (l.empty()) {
            tmp.SetArray();
            return &tmp;
        }
        lists.push_back(std::move(l));
    }
    Json out(rapidjson::kArrayType);
    std::vector<size_t> idx(lists.size(), 0);
    while (true) {
        Json tuple(rapidjson::kArrayType);
        for (size_t i = 0; i < lists.size(); ++i) push_copy(tuple, *lists[i][idx[i]], c);
        out.PushBack(tuple, *c.a);
        size_t i = lists.size();
        while (i > 0) {
            --i;
            if (++idx[i] < lists[i].size()) break;
            idx[i] = 0;
            if (i == 0) {
                tmp = std::move(out);
                return &tmp;
            }
        }
        if (lists.empty()) break;
    }
    tmp = std::move(out);
    return &tmp;
}

}  // namespace

void register_lists(FnTable& t) {
    t["list"] = {0, -1, &f_list};
    t["combine"] = {0, -1, &f_combine};
    t["flatten"] = {1, 1, &f_flatten};
    t["insert"] = {3, 3, &f_insert};
    t["range"] = {1, 3, &f_range};
    t["enumerate"] = {1, 2, &f_enumerate};
    t["first"] = {1, 1, &f_first};
    t["last"] = {1, 1, &f_last};
    t["nth"] = {2, 2, &f_nth};
    t["slice"] = {2, 4, &f_slice};
    t["map"] = {2, 2, &f_map};
    t["filter"] = {2, 2, &f_filter};
    t["map-dict"] = {3, 3, &f_map_dict};
    t["map-values"] = {2, 2, &f_map_values};
    t["group"] = {3, 3, &f_group};
    t["group-by"] = {1, 3, &f_group_by};
    t["sorted"] = {1, 2, &f_sorted<false>};
    t["sorted-descending"] = {1, 2, &f_sorted<true>};
    t["reversed"] = {1, 1, &f_reversed};
    t["distinct"] = {1, 2, &f_distinct};
    t["count"] = {1, 1, &f_count};
    t["max"] = {1, 2, &f_minmax<true>};
    t["min"] = {1, 2, &f_minmax<false>};
    t["sum"] = {1, 1, &f_sum};
    t["in"] = {2, 2, &f_in};
    t["union"] = {1, -1, &f_union};
    t["intersection"] = {1, -1, &f_intersection};
    t["difference"] = {1, -1, &f_difference};
    t["intersects"] = {2, 2, &f_intersects};
    t["tuples"] = {1, -1, &f_tuples};
}

}  // namespace sluice::dtl
