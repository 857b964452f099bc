/*
 * sluice/plugin.h — the Sluice plugin C contract (ABI 1.0).
 *
 * This header is the whole binary boundary between the Sluice kernel and a plugin (a shared
 * library). It is C on purpose: a C ABI survives compiler, standard-library and flag changes,
 * a C++ class interface does not. The C++ layer in sluice/sdk.hpp is header-only and compiled
 * into each plugin, so it never crosses the boundary.
 *
 * Rules of evolution (append-only):
 *   - Every struct starts with `struct_size`. Fields are only ever appended, each marked with the
 *     ABI minor that added it. A reader checks `struct_size` before touching an appended field.
 *   - A new minor may add structs, fields, constants and host functions. Nothing is removed,
 *     reordered or retyped without a new ABI major (which the kernel refuses to mix).
 *   - Only plain data crosses: bytes, C strings, integers, doubles. No C++ objects, no exceptions,
 *     no allocator handoff. The same contract can be driven over a socket by an out-of-process host.
 *
 * Memory: each side frees only what it allocated. What one side passes into a call is borrowed
 * for the duration of that call only; the callee copies what it wants to keep. Results flow back
 * through a caller-supplied `sluice_receive_fn`, so the callee never hands out memory to free.
 *
 * Threads: the kernel may run different instances on different threads concurrently; one
 * instance is called by one thread at a time unless its component has SLUICE_CAP_THREAD_SAFE.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define SLUICE_ABI_MAJOR 1
#define SLUICE_ABI_MINOR 0

/* The one symbol every plugin exports (see sluice_plugin_entry_fn). */
#define SLUICE_ENTRY_SYMBOL "sluice_plugin_entry"

#if defined(_WIN32)
#define SLUICE_EXPORT __declspec(dllexport)
#else
#define SLUICE_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- statuses, levels, kinds, formats, capabilities -------------------------------------- */

/* Every fallible call returns one of these (as int32_t, so the width is fixed). */
enum {
    SLUICE_OK = 0,    /* success */
    SLUICE_RETRY = 1, /* transient failure (network, lock, 5xx): the same call may succeed later */
    SLUICE_ERROR = 2, /* this call failed (bad data, rejected batch): fails the pipe run */
    SLUICE_FATAL = 3  /* the instance is unusable (bad config, lost connection): destroy it */
};

enum { SLUICE_LOG_DEBUG = 0, SLUICE_LOG_INFO = 1, SLUICE_LOG_WARNING = 2, SLUICE_LOG_ERROR = 3 };

enum {
    SLUICE_KIND_SOURCE = 1,
    SLUICE_KIND_SINK = 2,
    SLUICE_KIND_TRANSFORM = 3,
    SLUICE_KIND_STORAGE = 4
};

/* Encodings of a batch's bytes. Room is left for a binary encoding in a later minor. */
enum {
    SLUICE_FORMAT_JSON_ARRAY = 1, /* UTF-8 JSON array of entity objects, transit-encoded ("~t…") */
    SLUICE_FORMAT_BYTES = 2       /* a chunk of a rendered document (publisher output), count = 0 */
};

/* Component capability flags (sluice_component.capabilities). */
#define SLUICE_CAP_SUPPORTS_SINCE (1ull << 0)   /* source: honours `since` */
#define SLUICE_CAP_SINCE_COMPARABLE (1ull << 1) /* source: continuation tokens compare bytewise */
#define SLUICE_CAP_CHRONOLOGICAL (1ull << 2)    /* source: emits in increasing token order */
#define SLUICE_CAP_SIDE_EFFECTS (1ull << 3)     /* transform/sink: not run by previews */
#define SLUICE_CAP_THREAD_SAFE (1ull << 4)      /* instance may be called from several threads */
#define SLUICE_CAP_DATASET_SINK (1ull << 5)     /* sink writes to a dataset via the host (enables
                                                   exactly-once offsets, deletion tracking) */
/* sink: a publisher. GET /api/publishers/<pipe>/<type without "_endpoint"> makes the kernel call
   begin_run, write (each output batch) and end_run with a context whose emit_batch takes
   SLUICE_FORMAT_BYTES chunks, streamed to the client in order. */
#define SLUICE_CAP_PUBLISHER (1ull << 7)
#define SLUICE_CAP_PUSH_ONLY (1ull << 6)        /* source: entities only arrive pushed (receivers);
                                                   the kernel never schedules or reads it */

/* ---- plain data that crosses the boundary ------------------------------------------------ */

/* A batch of entities. */
typedef struct sluice_batch {
    uint32_t struct_size; /* sizeof(sluice_batch) as the producer knew it */
    uint32_t format;      /* SLUICE_FORMAT_* */
    /* OWNERSHIP/LIFETIME: owned by whoever built the batch; borrowed by the receiver for the
     * duration of the call it is passed to. Not NUL-terminated; `size` bytes. */
    const char* data;
    size_t size;  /* bytes in `data` */
    size_t count; /* number of entities in `data`, or 0 when the producer did not count */
    /* OWNERSHIP/LIFETIME: as `data`. NUL-terminated continuation token ("since" value) reached
     * once this batch is committed; NULL leaves the pipe's token unchanged. Sources only. */
    const char* continuation;
} sluice_batch;

/* Receives one result (or one chunk of a streamed result) from the other side.
 * OWNERSHIP/LIFETIME: `data` is borrowed for the duration of this call only; copy what you keep.
 * `user` is the opaque pointer the caller passed alongside this function.
 * Return 0 to continue, non-zero to stop a streamed result early. */
typedef int32_t (*sluice_receive_fn)(void* user, const char* data, size_t size);

/* Opaque per-call context the kernel passes to plugins (which pipe, which run, where errors go).
 * OWNERSHIP/LIFETIME: owned by the kernel; valid for the duration of the call it is passed to,
 * except that a context passed to `create`/`open` stays valid until `destroy`/`close`. */
typedef struct sluice_host_context sluice_host_context;

/* Arguments for creating a source, sink or transform instance. */
typedef struct sluice_create_args {
    uint32_t struct_size;
    uint32_t reserved;
    /* OWNERSHIP/LIFETIME (all strings below): borrowed for the `create` call; NUL-terminated
     * UTF-8. Copy what the instance keeps. */
    const char* config_json; /* the component's effective config object ($ENV/$SECRET resolved) */
    const char* system_json; /* the referenced system's effective config, or NULL */
    const char* pipe_id;     /* the pipe this instance serves */
    const char* node_json;   /* the node's metadata entity ("node", type metadata), or NULL */
} sluice_create_args;

/* ---- the host API: what the kernel offers plugins ----------------------------------------- */

/* OWNERSHIP/LIFETIME: the table is owned by the kernel, static for the life of the process;
 * a plugin may keep the pointer. Every string/batch argument a plugin passes in is borrowed for
 * the call; the kernel copies what it keeps. `ctx` arguments must be a context the kernel gave
 * the plugin (NULL is allowed for log/set_error outside any call). */
typedef struct sluice_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /* 1.0 */ void (*log)(sluice_host_context* ctx, int32_t level, const char* message);
    /* Records why the current call failed; shown in the run's error and the execution log. */
    /* 1.0 */ void (*set_error)(sluice_host_context* ctx, const char* message);
    /* Hands a batch downstream (source → transforms → sink, or transform → next stage). The
     * kernel processes it before returning. A non-OK result means stop producing and return. */
    /* 1.0 */ int32_t (*emit_batch)(sluice_host_context* ctx, const sluice_batch* batch);
    /* Sets the continuation token committed with the next batch (or at the end of the run). */
    /* 1.0 */ void (*set_continuation)(sluice_host_context* ctx, const char* token);
    /* Resolves a secret by name; the value arrives through `receive`. SLUICE_ERROR if unknown. */
    /* 1.0 */ int32_t (*get_secret)(sluice_host_context* ctx, const char* name,
                                    sluice_receive_fn receive, void* user);
    /* Latest live entities of `dataset` whose `property` (a dotted path, "_id" allowed) equals
     * any value of the JSON array `values_json`. One call per batch of keys, never per entity.
     * The result arrives as one JSON array through `receive`. */
    /* 1.0 */ int32_t (*lookup)(sluice_host_context* ctx, const char* dataset, const char* property,
                                const char* values_json, sluice_receive_fn receive, void* user);
    /* Non-zero once the run was asked to stop; long loops should poll it between batches. */
    /* 1.0 */ int32_t (*is_cancelled)(sluice_host_context* ctx);
    /* Adds `value` to the counter `name` of the current pipe (exported on /metrics). */
    /* 1.0 */ void (*metric)(sluice_host_context* ctx, const char* name, double value);
    /* Appends a batch to a dataset under the change-tracking write rule. Inside a pipe run the
     * kernel commits the pipe's continuation token in the same transaction. `options_json` may
     * be NULL or an object, e.g. {"force": false}. A JSON object with counts arrives through
     * `result` ({"written": n, "unchanged": n, "last_offset": n}); `result` may be NULL. */
    /* 1.0 */ int32_t (*write_dataset)(sluice_host_context* ctx, const char* dataset,
                                       const sluice_batch* batch, const char* options_json,
                                       sluice_receive_fn result, void* user);
    /* Streams a dataset read. `query_json`: {"dataset": id, "since": n|null, "limit": n|null,
     * "history": bool, "deleted": bool}. Batches arrive as JSON arrays through `receive`. */
    /* 1.0 */ int32_t (*read_dataset)(sluice_host_context* ctx, const char* query_json,
                                      sluice_receive_fn receive, void* user);
    /* Any other dataset operation, as a JSON command {"op": ..., ...} (see docs/storage.md);
     * the answer arrives as JSON through `receive`. */
    /* 1.0 */ int32_t (*dataset_command)(sluice_host_context* ctx, const char* command_json,
                                         sluice_receive_fn receive, void* user);
} sluice_host_api;

/* ---- vtables, one per component kind ------------------------------------------------------ */
/* Optional callbacks may be NULL (= unsupported). Instances are opaque `void*` the plugin owns:
 * OWNERSHIP/LIFETIME of every `void* instance` below: created by `create`/`open`, owned by the
 * plugin, released only by the matching `destroy`/`close`, which the kernel calls exactly once. */

typedef struct sluice_source_vtable {
    uint32_t struct_size;
    uint32_t reserved;
    /* Returns a new instance, or NULL after calling host->set_error(ctx, why). */
    /* 1.0 */ void* (*create)(const sluice_create_args* args, sluice_host_context* ctx);
    /* 1.0 */ void (*destroy)(void* instance);
    /* Emits every entity after `since` (NULL: from the start, a full run) through
     * host->emit_batch in batches of about `batch_size`, then returns SLUICE_OK. */
    /* 1.0 */ int32_t (*read)(void* instance, sluice_host_context* ctx, const char* since,
                              uint32_t batch_size);
} sluice_source_vtable;

typedef struct sluice_transform_vtable {
    uint32_t struct_size;
    uint32_t reserved;
    /* 1.0 */ void* (*create)(const sluice_create_args* args, sluice_host_context* ctx);
    /* 1.0 */ void (*destroy)(void* instance);
    /* Transforms `input` and hands the result on with host->emit_batch (zero or more times). */
    /* 1.0 */ int32_t (*transform)(void* instance, sluice_host_context* ctx,
                                   const sluice_batch* input);
    /* Optional. Describes the instance as one JSON object through `receive`, e.g.
     * {"dependencies": [{"dataset": "crm-person"}]}: the datasets it joins (DTL hops) whose
     * changes must reprocess the main-source entities that reached them. */
    /* 1.0 */ int32_t (*describe)(void* instance, sluice_host_context* ctx,
                                  sluice_receive_fn receive, void* user);
    /* Optional. `changed`: entities of the joined `dataset` that changed since the last run.
     * Answers through `receive` with the main-source entities that depend on them, as lookups
     * for the kernel to run: [{"property": "<dotted path>", "values": [...]}, ...]. */
    /* 1.0 */ int32_t (*dependents)(void* instance, sluice_host_context* ctx, const char* dataset,
                                    const sluice_batch* changed, sluice_receive_fn receive,
                                    void* user);
} sluice_transform_vtable;

typedef struct sluice_sink_vtable {
    uint32_t struct_size;
    uint32_t reserved;
    /* 1.0 */ void* (*create)(const sluice_create_args* args, sluice_host_context* ctx);
    /* 1.0 */ void (*destroy)(void* instance);
    /* Writes one batch. SLUICE_RETRY asks the kernel to retry it (then entity by entity). */
    /* 1.0 */ int32_t (*write)(void* instance, sluice_host_context* ctx, const sluice_batch* batch);
    /* Optional. `run_json`: {"full": bool}. */
    /* 1.0 */ int32_t (*begin_run)(void* instance, sluice_host_context* ctx, const char* run_json);
    /* Optional. `run_json`: {"full": bool, "completed": bool} — e.g. deletion tracking. */
    /* 1.0 */ int32_t (*end_run)(void* instance, sluice_host_context* ctx, const char* run_json);
} sluice_sink_vtable;

/* A storage backend holds datasets, pipe state and the node's config. Each operation is
 * atomic. The command vocabulary is documented in docs/storage.md. */
typedef struct sluice_storage_vtable {
    uint32_t struct_size;
    uint32_t reserved;
    /* `args->config_json`: the backend's config, e.g. {"dsn": "..."}. NULL + set_error on failure. */
    /* 1.0 */ void* (*open)(const sluice_create_args* args, sluice_host_context* ctx);
    /* 1.0 */ void (*close)(void* store);
    /* Appends `batch` to `dataset` under the write rule. `options_json` (may be NULL):
     * {"force": bool, "pipe": id, "pipe_state": {...}, "run_id": s}; a given pipe_state is
     * committed in the same transaction as the batch. Counts arrive through `result`. */
    /* 1.0 */ int32_t (*write)(void* store, sluice_host_context* ctx, const char* dataset,
                               const sluice_batch* batch, const char* options_json,
                               sluice_receive_fn result, void* user);
    /* Streams a read; query as for sluice_host_api.read_dataset. */
    /* 1.0 */ int32_t (*read)(void* store, sluice_host_context* ctx, const char* query_json,
                              sluice_receive_fn receive, void* user);
    /* As sluice_host_api.lookup. */
    /* 1.0 */ int32_t (*lookup)(void* store, sluice_host_context* ctx, const char* dataset,
                                const char* property, const char* values_json,
                                sluice_receive_fn receive, void* user);
    /* Everything else: {"op": "list" | "info" | "delete" | "get" | "state_get" | ...}. */
    /* 1.0 */ int32_t (*command)(void* store, sluice_host_context* ctx, const char* command_json,
                                 sluice_receive_fn receive, void* user);
} sluice_storage_vtable;

/* ---- the descriptor a plugin returns ------------------------------------------------------ */

typedef struct sluice_component {
    uint32_t struct_size;
    uint32_t kind; /* SLUICE_KIND_* */
    /* OWNERSHIP/LIFETIME (all pointers in this struct): static storage owned by the plugin,
     * valid while the library is loaded (the kernel never unloads a plugin). */
    const char* type_name;     /* config "type", e.g. "sql"; unique per kind across plugins */
    const char* config_schema; /* JSON Schema (draft-04) of the component's config object */
    uint64_t capabilities;     /* SLUICE_CAP_* */
    const void* vtable;        /* sluice_<kind>_vtable matching `kind` */
} sluice_component;

typedef struct sluice_plugin_descriptor {
    uint32_t struct_size;
    uint16_t abi_major; /* SLUICE_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor; /* SLUICE_ABI_MINOR the plugin was built against */
    /* OWNERSHIP/LIFETIME (all pointers in this struct): static storage owned by the plugin,
     * valid while the library is loaded. */
    const char* name;        /* unique plugin name, e.g. "sluice-source-embedded" */
    const char* version;     /* semantic version of the plugin itself */
    const char* description; /* one line */
    const char* license;     /* SPDX identifier */
    /* An array of `component_count` pointers (pointers, so sluice_component can grow). */
    const sluice_component* const* components;
    size_t component_count;
} sluice_plugin_descriptor;

/* The entry point, exported as SLUICE_ENTRY_SYMBOL. Called once, right after loading.
 * OWNERSHIP/LIFETIME: `host` is owned by the kernel and valid for the life of the process; the
 * returned descriptor is owned by the plugin and must stay valid while the library is loaded.
 * Returns NULL if the plugin cannot run on this host (it should host->log why). */
typedef const sluice_plugin_descriptor* (*sluice_plugin_entry_fn)(const sluice_host_api* host);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SLUICE_PLUGIN_H */
