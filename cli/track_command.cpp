// `sctape track`: runs one configuration and writes its RESULT JSON.
#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "commands.hpp"
#include "config.hpp"
#include "ranges.hpp"
#include "ranks.hpp"
#include "result.hpp"
#include "physics/tracking.hpp"
#ifdef SCTAPE_HAVE_CUDA
#include "cuda/device.hpp"
#include "cuda/gpu_tracking.hpp"
#endif

namespace sctape::cli {
namespace {

std::string track_usage() {
    return
    "usage: sctape track CONFIG.json [--out RESULT.json] [--dump-particles PREFIX]\n"
    "                    [--timeline TIMELINE.json] [--quiet]\n"
    "\n"
    "Tracks the beam described by CONFIG.json and writes the result as JSON\n"
    "(to RESULT.json, or to standard output without --out).\n"
    "\n"
    "  --out RESULT.json        result file: schema_version, the config, initial and\n"
    "                           final moments, wall time per substep, backend used\n"
    "  --dump-particles PREFIX  also write PREFIX_initial.csv and PREFIX_final.csv\n"
    "                           (header x,px,y,py,tau,delta), and with reverse mode\n"
    "                           PREFIX_gradient.csv (d objective / d initial coordinates)\n"
    "  --timeline TIMELINE.json the allocator's events (time, bytes, substep, forward/\n"
    "                           backward) and the kicks' start and end: over the gradient\n"
    "                           run in reverse mode, else over the forward tracking\n"
    "  --quiet                  no progress on standard error\n"
    "\n"
    "CONFIG keys: species, kinetic_energy_eV, bunch_charge_C, n_particles, seed,\n"
    "distribution, lattice, space_charge, dtype (" + kDtypeNames.joined("|") + "), backend (" +
        kBackendNames.joined("|") + "),\n"
        "threads (docs/config.md); reverse mode: strategy (" + kStrategyNames.joined("|") + "),\n"
        "snapshots, objective (" + kObjectiveNames.joined("|") + "),\n"
        "gradients (list of names).\n"
        "Bad input exits with code 2 and writes nothing.\n"
        "MPI build (preset mpi): `mpirun -n P sctape track CONFIG.json` splits the\n"
        "particles over P ranks; rank 0 writes (docs/mpi.md).\n";
}

struct TrackArgs {
    std::string config, out, dump_prefix, timeline;
    bool quiet = false;
};

TrackArgs parse_args(const std::vector<std::string>& args) {
    TrackArgs t;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&](const char* flag) -> std::string {
            // an empty value would silently mean "no such output"
            if (i + 1 >= args.size() || args[i + 1].empty()) throw ConfigError(std::string(flag) + " needs a value");
            return args[++i];
        };
        if (a == "--out" || a == "-o") t.out = value("--out");
        else if (a == "--dump-particles") t.dump_prefix = value("--dump-particles");
        else if (a == "--timeline") t.timeline = value("--timeline");
        else if (a == "--quiet") t.quiet = true;
        else if (!a.empty() && a[0] == '-') throw ConfigError("unknown option '" + a + "'");
        else if (t.config.empty()) t.config = a;
        else throw ConfigError("unexpected argument '" + a + "'");
    }
    if (t.config.empty()) throw ConfigError("missing CONFIG.json");
    return t;
}

// Prints "[sctape] slice k/n" to stderr about every 5% of the run.
Progress progress_printer(bool quiet) {
    if (quiet) return {};
    return [last = -1](int done, int total) mutable {
        int pct = 100 * done / total;
        if (pct / 5 != last / 5 || done == total) {
            std::cerr << "[sctape] slice " << done << "/" << total << " (" << pct << "%)\n";
            last = pct;
        }
    };
}

// The allocator whose bytes a run on `backend` counts: the device's on the GPU.
MemoryTracker& run_memory(Backend backend) {
#ifdef SCTAPE_HAVE_CUDA
    if (backend == Backend::cuda) return cuda::device_memory();
#endif
    (void)backend;
    return host_memory();
}

// Starts recording `tracker`'s timeline (when `on`) from its current level and time.
TimelineRun start_timeline(MemoryTracker& tracker, bool on, const RunConfig& config, Backend backend) {
    TimelineRun run;
    run.reverse_mode = config.differentiate;
    run.strategy = config.gradient.strategy;
    run.dtype = config.dtype;
    run.device_memory = backend == Backend::cuda;
    tracker.set_timeline(false);
    tracker.clear_timeline();
    run.start_bytes = tracker.current_bytes();
    run.origin_s = tracker.seconds_since_start();
    tracker.set_timeline(on);
    return run;
}

void print_warnings(const std::vector<std::string>& warnings) {
    if (!is_root_rank()) return;  // every rank has the same ones
    for (const auto& w : warnings) std::cerr << "sctape track: warning: " << w << "\n";
}

// Runs the tracking; returns the RESULT and adds the particle CSVs to `files`.
template <class T>
nlohmann::json run(const RunConfig& config, const TrackArgs& args, Backend backend, const std::string& backend_reason,
                   std::vector<std::pair<std::string, std::string>>& files) {
    Beam<T> beam = make_beam<T>(config.beam);
    // with the fixed-point deposit the tracking is the same bits for any split
    // over ranks, and so are its moments (exact sums)
    const bool exact_moments = deterministic_deposit_requested();
    const Moments initial = compute_moments(beam, exact_moments);
    std::string initial_csv;
    if (!args.dump_prefix.empty()) initial_csv = particles_csv(gather_beam(beam));
    // a forward-only run's timeline covers the tracking itself (a reverse-mode one, the gradient run)
    const bool forward_timeline = !args.timeline.empty() && !config.differentiate;
    MemoryTracker& memory = run_memory(backend);
    const TimelineRun forward_run = start_timeline(memory, forward_timeline, config, backend);
    TrackReport report;
#ifdef SCTAPE_HAVE_CUDA
    if (backend == Backend::cuda) report = track_on_gpu(beam, config.tracking, progress_printer(args.quiet));
    else
#endif
        report = track(beam, config.tracking, progress_printer(args.quiet || !is_root_rank()));
    memory.set_timeline(false);
    if (forward_timeline) files.emplace_back(args.timeline, timeline_json(memory, forward_run).dump() + "\n");
    const Moments final_moments = compute_moments(beam, exact_moments);

    nlohmann::json per_substep = nlohmann::json::object(), per_kick = nlohmann::json::object();
    for (Substep s : kAllSubsteps) {
        double sec = report.substep_seconds[static_cast<int>(s)];
        per_substep[substep_name(s)] = sec;
        if (report.kicks > 0) per_kick[substep_name(s)] = sec / report.kicks;
    }
    nlohmann::json result = {
        {"schema_version", kResultSchemaVersion},
        {"sctape_version", SCTAPE_VERSION},
        {"config", config.source},
        {"backend", {{"requested", backend_name(config.backend)}, {"used", backend_name(backend)}, {"reason", backend_reason}}},
        {"dtype", dtype_name(config.dtype)},
        {"threads", config.tracking.threads},
        {"n_particles", beam.global_size()},
        {"kicks", report.kicks},
        {"moments", {{"initial", moments_json(initial)}, {"final", moments_json(final_moments)}}},
        {"timing",
         {{"total_s", report.total_seconds},
          {"drift_s", report.drift_seconds},
          {"substep_total_s", per_substep},
          {"substep_per_kick_s", per_kick}}},
    };
    if (!args.dump_prefix.empty()) {
        files.emplace_back(args.dump_prefix + "_initial.csv", initial_csv);
        files.emplace_back(args.dump_prefix + "_final.csv", particles_csv(gather_beam(beam)));
    }
    if (config.differentiate) {
        if (!args.quiet && is_root_rank())
            std::cerr << "[sctape] reverse mode: strategy " << strategy_name(config.gradient.strategy) << ", objective "
                      << objective_name(config.gradient.objective) << "\n";
        GradientRequest request = config.gradient;
        request.backend = backend;  // every strategy runs on either backend
        const TimelineRun gradient_run = start_timeline(memory, !args.timeline.empty(), config, backend);
        GradientResult g = compute_gradient<T>(config.beam, config.tracking, request);
        memory.set_timeline(false);
        if (!args.timeline.empty()) files.emplace_back(args.timeline, timeline_json(memory, gradient_run).dump() + "\n");
        result["reverse_mode"] = gradient_json(g, config.gradient);
        result["reverse_mode"]["backend"] = backend_name(request.backend);
        result["reverse_mode"]["memory_space"] = request.backend == Backend::cuda ? "device" : "host";
        if (!args.dump_prefix.empty()) {
            gather_particle_gradient(g);
            files.emplace_back(args.dump_prefix + "_gradient.csv", particle_gradient_csv(g));
        }
        if (communicator().distributed()) result["mpi"] = ranks_json(beam.size(), &g.memory);
    } else if (communicator().distributed()) {
        result["mpi"] = ranks_json(beam.size(), nullptr);
    }
    return result;
}

// Over MPI ranks: every strategy on the CPU backend; the hand-written ones
// also on the CUDA backend when asked for by name (every rank reads the same
// config, so every rank refuses it alike).
void check_ranks(const RunConfig& config) {
    if (communicator().size() == 1) return;
    if (config.differentiate && config.gradient.strategy == Strategy::autograd && config.backend == Backend::cuda)
        throw ConfigError("strategy \"autograd\" runs over MPI ranks on the CPU backend only (docs/mpi.md): use "
                          "backend \"cpu\", or \"fused\", \"checkpoint\" or \"reversible\" on \"cuda\"");
}

// Every file the run will write, named by its option, for check_output_targets.
std::vector<OutputTarget> output_targets(const TrackArgs& args, const RunConfig& config) {
    std::vector<OutputTarget> targets;
    if (!args.out.empty()) targets.push_back({"--out", args.out});
    if (!args.dump_prefix.empty()) {
        targets.push_back({"--dump-particles", args.dump_prefix + "_initial.csv"});
        targets.push_back({"--dump-particles", args.dump_prefix + "_final.csv"});
        if (config.differentiate) targets.push_back({"--dump-particles", args.dump_prefix + "_gradient.csv"});
    }
    if (!args.timeline.empty()) targets.push_back({"--timeline", args.timeline});
    return targets;
}

// Stages every file, prints the RESULT when there is no --out, and renames
// the files into place only once standard output took it too.
void write_outputs(const std::vector<std::pair<std::string, std::string>>& files, const TrackArgs& args,
                   const nlohmann::json& result) {
    StagedFiles staged;
    for (const auto& [path, content] : files) staged.stage(path, content);
    if (args.out.empty()) std::cout << result.dump(2) << "\n";
    check_stdout();
    staged.commit();
}

}  // namespace

int track_command(const std::vector<std::string>& argv) {
    return run_subcommand("track", track_usage().c_str(), argv, [&] {
        TrackArgs args;
        RunConfig config;
        std::string reason;
        Backend backend = Backend::cpu;
        int node_device = -1;  // over ranks with several GPUs on the node: this rank's
        // every rank checks the same input, but a file one rank cannot read
        // must still stop them all before the first reduction
        agree_before_run([&] {
            args = parse_args(argv);
            config = load_config(args.config);
            print_warnings(validate_run(config, omp_get_num_procs()));
            check_output_targets(output_targets(args, config), {args.config});
            check_ranks(config);
#ifdef SCTAPE_HAVE_CUDA
            // before any other CUDA call: ranks sharing a node spread over its GPUs
            if (communicator().size() > 1 && config.backend == Backend::cuda)
                node_device = cuda::use_device_of_local_rank();
#endif
            // what one rank holds: its share of the particles and the whole grid
            RunConfig per_rank = config;
            per_rank.beam.n_particles = local_particles(config.beam.n_particles).size();
            const double tracking = estimate_tracking_bytes(per_rank), tape = estimate_tape_bytes(per_rank);
            const double have = available_memory_bytes();
            auto mib = [](double bytes) { return std::to_string(static_cast<long long>(bytes / (1 << 20))); };
            if (tracking > have)
                throw ConfigError("the run needs about " + mib(tracking) + " MiB but only " + mib(have) +
                                  " MiB of memory are available (n_particles, space_charge.grid)");
            if (tracking + tape > have)
                throw ConfigError("reverse mode with strategy \"" + std::string(strategy_name(config.gradient.strategy)) +
                                  "\" would keep about " + mib(tape) + " MiB on its tape (tracking needs " + mib(tracking) +
                                  " MiB), but only " + mib(have) +
                                  " MiB are available: use strategy \"fused\", \"checkpoint\" (with snapshots) or "
                                  "\"reversible\", or fewer kicks (lattice slices)");
            backend = resolve_backend(config.backend, reason);
            if (communicator().size() > 1 && backend == Backend::cuda) {
                if (config.backend == Backend::automatic) {  // "auto" found a GPU: the CPU until cuda is named
                    backend = Backend::cpu;
                    reason = "over MPI ranks \"auto\" runs the CPU backend (docs/mpi.md)";
                } else {
                    reason += communicator().reads_device_memory()
                                  ? "; over MPI ranks: device pointers to a CUDA-aware MPI"
                                  : "; over MPI ranks: device buffers staged through pinned host memory";
                    if (node_device >= 0) reason += "; GPU " + std::to_string(node_device) + " of this node";
                }
            }
#ifdef SCTAPE_HAVE_CUDA
            if (config.differentiate && backend == Backend::cuda) {
                // the tape lives in device memory: check it against the GPU's free memory before starting
                const double free_device = double(cuda::check_device_memory().device_free_bytes);
                if (tracking + tape > free_device)
                    throw ConfigError("reverse mode on the GPU would need about " + mib(tracking + tape) +
                                      " MiB of device memory (tape " + mib(tape) + " MiB) but only " + mib(free_device) +
                                      " MiB are free: use checkpoint with snapshots, fewer kicks, or backend \"cpu\"");
            }
#endif
        });
        if (!args.quiet && is_root_rank()) std::cerr << "[sctape] backend: " << backend_name(backend) << " (" << reason << ")\n";
        std::vector<std::pair<std::string, std::string>> files;
        nlohmann::json result = on_every_rank("track", [&] {
            return config.dtype == Dtype::float32 ? run<float>(config, args, backend, reason, files)
                                                  : run<double>(config, args, backend, reason, files);
        });
        // the one check of every number before anything is written (rank 0
        // holds the whole RESULT; every rank learns its verdict)
        const double gamma0 = Reference::from_kinetic(config.beam.species.mass_eV, config.beam.kinetic_energy_eV).gamma;
        std::string failure;
        if (is_root_rank()) {
            try {
                print_warnings(check_result(result, gamma0));
            } catch (const std::exception& e) {
                failure = e.what();
            }
        }
        check_on_all_ranks(failure.empty(), failure.empty() ? "the result check failed on rank 0" : failure);
        if (!is_root_rank()) return 0;
        if (!args.out.empty()) files.emplace_back(args.out, result.dump(2) + "\n");
        write_outputs(files, args, result);
        return 0;
    });
}

}  // namespace sctape::cli
