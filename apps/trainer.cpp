#include "apps/trainer.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "apps/datasets.h"
#include "apps/distributed.h"
#include "apps/progress.h"
#include "apps/timing.h"
#include "core/atomic_file.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops/elementwise.h"
#include "core/ops/loss.h"
#include "optim/schedule.h"
#include "optim/sgd.h"

namespace qforge::apps {

double EvalResult::class_acc(size_t k) const {
  int64_t tot = 0;
  for (int64_t v : confusion[k]) tot += v;
  return tot ? 100.0 * confusion[k][k] / tot : 0;
}

int argmax(const float* row, int k) {
  int best = 0;
  for (int j = 1; j < k; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

double top1_agreement(const EvalResult& a, const EvalResult& b) {
  QF_CHECK(a.predictions.size() == b.predictions.size(), "top1_agreement: evaluations of different sizes");
  int64_t agree = 0;
  for (size_t i = 0; i < a.predictions.size(); ++i) agree += a.predictions[i] == b.predictions[i];
  return 100.0 * agree / std::max<size_t>(1, a.predictions.size());
}

EvalResult evaluate(nn::Module& model, data::Loader& loader, int num_classes, bool progress) {
  EvalResult r;
  r.confusion.assign(num_classes, std::vector<int64_t>(num_classes, 0));
  bool was_training = model.training();
  model.eval();
  NoGradGuard ng;
  double t0 = now_seconds();
  loader.start_epoch(0);
  data::Batch b;
  Progress prog("eval", static_cast<int64_t>(loader.num_batches()), 10);
  int64_t done = 0;
  while (loader.next(b)) {
    if (b.n == 0) continue;  // a rank's empty share of a short last batch
    Tensor x = Tensor::from({b.n, b.c, b.h, b.w}, b.images);
    Tensor y = model(x);
    QF_CHECK(y.dim() == 2 && y.size(1) == num_classes, "evaluate: the model gives " + shape_str(y.shape()) +
                                                           ", expected (N," + std::to_string(num_classes) + ")");
    for (int i = 0; i < b.n; ++i) {
      const float* row = y.data() + static_cast<int64_t>(i) * num_classes;
      const int best = argmax(row, num_classes);
      r.predictions.push_back(best);
      r.confusion[b.labels[i]][best]++;
      r.correct += best == b.labels[i];
      r.n++;
    }
    if (progress) prog.update(++done, "", r.n / (now_seconds() - t0));
  }
  r.seconds = now_seconds() - t0;
  model.train(was_training);
  return r;
}

void print_eval(const EvalResult& r, const std::vector<std::string>& classes) {
  std::printf("top-1 accuracy: %.2f%% (%lld/%lld) in %.2f s\n", r.top1(), static_cast<long long>(r.correct),
              static_cast<long long>(r.n), r.seconds);
  std::printf("\n%-16s %8s   confusion (rows: true, columns: predicted)\n", "class", "acc %");
  for (size_t k = 0; k < r.confusion.size(); ++k) {
    std::string name = k < classes.size() ? classes[k] : std::to_string(k);
    std::printf("%-16.16s %8.2f  ", name.c_str(), r.class_acc(k));
    for (int64_t v : r.confusion[k]) std::printf(" %5lld", static_cast<long long>(v));
    std::printf("\n");
  }
}

nlohmann::json eval_json(const EvalResult& r, const std::vector<std::string>& classes) {
  nlohmann::json per = nlohmann::json::object();
  for (size_t k = 0; k < r.confusion.size(); ++k)
    per[k < classes.size() ? classes[k] : std::to_string(k)] = r.class_acc(k);
  return {{"top1", r.top1()},    {"n", r.n},           {"correct", r.correct},
          {"per_class", per},    {"classes", classes}, {"confusion", r.confusion},
          {"seconds", r.seconds}};
}

std::string last_path(const Config& cfg) { return cfg.j["output"]["dir"].get<std::string>() + "/last.safetensors"; }
std::string best_path(const Config& cfg) { return cfg.j["output"]["dir"].get<std::string>() + "/best.safetensors"; }

namespace {

// On resume, metrics.jsonl keeps the lines of the epochs the checkpoint completed. A line written
// after it (the process stopped between the log line and the checkpoint) or cut short by the stop
// is dropped; that epoch is run again and logs its line when it ends. Rewritten atomically.
void trim_metrics(const std::string& path, int epochs_done) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string kept;
  for (size_t b = 0, e; (e = text.find('\n', b)) != std::string::npos; b = e + 1) {
    const std::string line = text.substr(b, e - b);
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("epoch") && j["epoch"].is_number_integer() && j["epoch"].get<int64_t>() >= 1 &&
        j["epoch"].get<int64_t>() <= epochs_done)
      kept += line + "\n";
  }
  if (kept != text) write_text_atomic(path, kept);
}

}  // namespace

FitResult fit(const Config& cfg, nn::Module& model, const FitOptions& o) {
  const auto& t = cfg.j["train"];
  const std::string out_dir = cfg.j["output"]["dir"];
  // A data-parallel run (mpirun): this rank's share of every batch; rank 0 alone writes files.
  ProcessGroup* group = process_group();
  const bool rank0 = is_rank0();
  const int ranks = group ? group->size() : 1;
  if (group) group->sync_batch_norm = t["sync_bn"];
  if (rank0) {
    make_directories(out_dir);
    remove_stale_temps(out_dir);  // what a killed run was writing
  }
  const int epochs = t["epochs"], num_classes = cfg.j["model"]["num_classes"];
  const uint64_t seed = t["seed"];
  const int global_batch = t["batch_size"];
  QF_CHECK(global_batch >= ranks, cfg.where("train.batch_size") + ": " + std::to_string(global_batch) +
                                      " is the global batch, smaller than the " + std::to_string(ranks) +
                                      " ranks sharing it");

  // Labels are the model's: a folder's classes are matched to them by name, whatever their order.
  Splits splits = open_splits(cfg, o.classes);
  auto train_ds = splits.train, test_ds = splits.test;
  data::LoaderOptions lo;
  lo.batch_size = t["batch_size"];
  lo.shuffle = true;
  lo.train = true;
  lo.drop_last = true;
  lo.seed = seed;
  lo.workers = cfg.j["data"]["workers"];
  lo.shard = group ? group->rank() : 0;
  lo.shards = ranks;
  data::Loader train_loader(train_ds, transform_config(cfg), lo);
  QF_CHECK(train_loader.num_batches() > 0, cfg.where("train.batch_size") + ": larger than the training set (" +
                                               std::to_string(train_ds->size()) + " images)");
  data::Loader test_loader = make_eval_loader(test_ds, cfg, t["eval_batch_size"], lo.shard, lo.shards);
  const data::ImageSpec in = train_loader.output_spec();

  optim::SGD opt = [&] {
    try {
      return optim::SGD(model.named_parameters(), sgd_options(cfg), param_groups(cfg));
    } catch (const Error& e) {
      throw Error(cfg.where("optim.param_groups") + ": " + e.what());
    }
  }();
  if (!opt.groups().empty()) {
    const std::vector<int> n = opt.group_sizes();
    for (size_t g = 0; g < opt.groups().size(); ++g) {
      const optim::ParamGroup& pg = opt.groups()[g];
      std::printf("param group '%s': %d tensors, lr %g, weight decay %g\n", pg.match.c_str(), n[g],
                  pg.lr.value_or(opt.options.lr), pg.weight_decay.value_or(opt.options.weight_decay));
    }
    std::printf("other parameters: %d tensors, lr %g, weight decay %g\n", n.back(), opt.options.lr,
                opt.options.weight_decay);
  }
  optim::Schedule sched(schedule_options(cfg), static_cast<int64_t>(train_loader.num_batches()), epochs);
  const double base_momentum = cfg.j["optim"]["momentum"];

  CheckpointInfo info;
  info.kind = o.kind;
  info.classes = splits.classes;
  info.input = {in.channels, in.height, in.width};
  if (o.resume && rank0) {
    LoadedCheckpoint ck = load_checkpoint(last_path(cfg));
    QF_CHECK(ck.is_qforge && ck.info.kind == o.kind,
             last_path(cfg) + ": not a " + o.kind + " checkpoint of qforge, cannot resume from it");
    model.load_state_dict(ck.model_state(), last_path(cfg));
    opt.load_state(ck.optim_state(), last_path(cfg));
    info = ck.info;
    std::printf("resuming from %s: epoch %d, batch %lld\n", last_path(cfg).c_str(), info.epoch + 1,
                static_cast<long long>(info.batch));
  }
  // Every rank starts from rank 0's model, momentum and position (a checkpoint of any number of
  // ranks: the global batch, its order and its augmentation do not depend on it).
  std::unique_ptr<GradientSync> grad_sync;
  if (group) {
    broadcast_model(*group, model, &opt);
    int64_t pos[3] = {info.epoch, info.batch, info.step};
    double acc[2] = {info.best_acc, info.test_acc};
    group->broadcast(pos, sizeof pos, 0);
    group->broadcast(acc, sizeof acc, 0);
    info.epoch = static_cast<int>(pos[0]), info.batch = pos[1], info.step = pos[2];
    info.best_acc = acc[0], info.test_acc = acc[1];
    grad_sync = std::make_unique<GradientSync>(*group, model.named_parameters());
    std::printf("data-parallel: %d ranks, global batch %d (%d per rank), BatchNorm statistics %s\n", ranks,
                global_batch, global_batch / ranks, group->sync_batch_norm ? "of the global batch" : "per rank");
  }

  // Never write non-finite weights over a good checkpoint: a step can diverge with a finite loss.
  auto save = [&](const std::string& path) {
    if (!rank0) return;
    for (auto& [name, t] : model.state_dict())
      for (int64_t i = 0; i < t.numel(); ++i)
        if (!std::isfinite(t.data()[i]))
          throw Error("training diverged: '" + name + "' is not finite after step " + std::to_string(info.step) +
                      "; not saving it. The last good checkpoint, if any, is kept: " + last_path(cfg) +
                      ". Try a lower optim.lr.");
    save_checkpoint(path, model, &opt, cfg, info);
  };
  FitResult res;
  res.best_acc = info.best_acc;
  int64_t steps_this_run = 0;
  const int64_t per_epoch = static_cast<int64_t>(train_loader.num_batches());
  const int64_t ckpt_every = t["checkpoint_every"];
  const float smoothing = t["label_smoothing"].get<float>();
  // A fresh run starts a fresh log; a resumed one appends to the lines of the epochs it keeps.
  const std::string metrics_path = out_dir + "/metrics.jsonl";
  if (o.resume && rank0) trim_metrics(metrics_path, info.epoch);
  std::ofstream metrics;
  if (rank0) {
    metrics.open(metrics_path, o.resume ? std::ios::app : std::ios::trunc);
    QF_CHECK(metrics, metrics_path + ": cannot open for writing: " + std::strerror(errno));
  }

  for (int epoch = info.epoch; epoch < epochs; ++epoch) {
    if (o.on_epoch_start) o.on_epoch_start(epoch);
    model.train();
    train_loader.start_epoch(epoch, static_cast<size_t>(info.batch));
    Progress prog("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs), per_epoch, t["log_every"]);
    double t0 = now_seconds(), loss_sum = 0, wait_s = 0;
    // Throughput, and under mpirun the share of it spent waiting for gradient sums: the stop line's
    // and the epoch line's words.
    auto img_per_s = [](int64_t n, double secs) {
      char b[32];
      std::snprintf(b, sizeof b, "%.1f img/s", n / std::max(secs, 1e-9));
      return std::string(b);
    };
    auto ranks_note = [&](int64_t n, double secs) {
      char b[128];
      std::snprintf(b, sizeof b, "  (%d ranks: %s, %.1f%% of the time waiting for gradient sums)", ranks,
                    img_per_s(n, secs).c_str(), 100.0 * wait_s / std::max(secs, 1e-9));
      return std::string(b);
    };
    if (group) group->take_wait_seconds();
    int64_t seen = 0, correct = 0, done_here = 0;
    data::Batch b;
    while (train_loader.next(b)) {
      double lr = sched.lr(info.step);
      opt.options.lr = static_cast<float>(lr);
      opt.options.momentum = static_cast<float>(sched.momentum(info.step, base_momentum));
      Tensor x = Tensor::from({b.n, b.c, b.h, b.w}, b.images);
      opt.zero_grad();
      Tensor logits = model(x);
      Tensor loss = cross_entropy(logits, b.labels, smoothing);
      int64_t right = 0;
      for (int i = 0; i < b.n; ++i) {
        const float* row = logits.data() + static_cast<int64_t>(i) * num_classes;
        right += argmax(row, num_classes) == b.labels[i];
      }
      float lv = loss.item();
      int64_t batch_n = b.n;
      if (group) {
        // This rank's mean loss, weighted by its share: the ranks' gradients then sum to the global
        // batch's. The reported loss and accuracy are the global batch's.
        loss = scale(loss, static_cast<float>(b.n) / static_cast<float>(global_batch));
        double sums[3] = {static_cast<double>(lv) * b.n, static_cast<double>(right), static_cast<double>(b.n)};
        group->allreduce_sum(sums, 3);
        batch_n = static_cast<int64_t>(sums[2]);
        lv = static_cast<float>(sums[0] / sums[2]);
        right = static_cast<int64_t>(sums[1]);
      }
      if (!std::isfinite(lv)) {
        throw Error("loss is " + std::string(std::isnan(lv) ? "NaN" : "infinite") + " at epoch " +
                    std::to_string(epoch + 1) + ", batch " + std::to_string(info.batch + 1) + " (lr " +
                    std::to_string(lr) + "); training stopped. The last good checkpoint, if any, is kept: " +
                    last_path(cfg) + ". Try a lower optim.lr.");
      }
      if (grad_sync) {
        {
          auto hook = grad_sync->hook();  // buckets leave while backward runs
          loss.backward();
        }
        grad_sync->finish();
        wait_s += group->take_wait_seconds();
      } else {
        loss.backward();
      }
      opt.step();
      // Per-rank BatchNorm statistics (train.sync_bn: false) leave each rank its own running
      // averages: rank 0's are kept, as DDP's broadcast_buffers does.
      if (group && !group->sync_batch_norm)
        for (auto& [name, buf] : model.named_buffers())
          group->broadcast(buf.data(), buf.numel() * static_cast<int64_t>(sizeof(float)), 0);
      correct += right;
      loss_sum += static_cast<double>(lv) * batch_n;
      seen += batch_n;
      ++info.batch;
      ++info.step;
      ++done_here;
      ++steps_this_run;
      char status[96];
      std::snprintf(status, sizeof status, "loss %.4f  lr %.4g", loss_sum / seen, lr);
      prog.update(info.batch, status, seen / (now_seconds() - t0));
      bool stop = o.max_steps > 0 && steps_this_run >= o.max_steps;
      if (stop && group) check_ranks_agree(*group, model);
      if (stop || (ckpt_every > 0 && info.step % ckpt_every == 0)) save(last_path(cfg));
      if (stop) {
        std::string why = "stopped after " + std::to_string(steps_this_run) + " steps (--max-steps); resume with --resume";
        if (group) why += ranks_note(seen, now_seconds() - t0);
        prog.finish(why);
        return res;
      }
    }
    double train_s = now_seconds() - t0;
    EvalResult ev = evaluate(model, test_loader, num_classes);
    if (group) {  // each rank evaluated its share of the test set
      std::vector<int64_t> counts{ev.correct, ev.n};
      for (auto& row : ev.confusion) counts.insert(counts.end(), row.begin(), row.end());
      group->allreduce_sum(counts.data(), static_cast<int64_t>(counts.size()));
      ev.correct = counts[0], ev.n = counts[1];
      size_t at = 2;
      for (auto& row : ev.confusion)
        for (auto& v : row) v = counts[at++];
      ev.predictions.clear();  // this rank's only
      check_ranks_agree(*group, model);
    }
    info.epoch = epoch + 1;
    info.batch = 0;
    info.test_acc = ev.top1();
    bool best = ev.top1() > info.best_acc;
    if (best) info.best_acc = ev.top1();
    char status[160];
    std::snprintf(status, sizeof status, "loss %.4f  train acc %.2f%%  test acc %.2f%%",
                  seen ? loss_sum / seen : 0.0, seen ? 100.0 * correct / seen : 0.0, ev.top1());
    std::string line = status;
    if (group) line += ranks_note(seen, train_s);
    else line += "  " + img_per_s(seen, train_s);
    prog.finish(line);
    nlohmann::json m = {
        {"kind", o.kind},
        {"epoch", epoch + 1},
        {"step", info.step},
        {"train_loss", seen ? loss_sum / seen : 0.0},
        {"train_acc", seen ? 100.0 * correct / seen : 0.0},
        {"test_acc", ev.top1()},
        {"train_seconds", train_s},
        {"train_img_per_s", seen / std::max(train_s, 1e-9)},
        {"partial_epoch", done_here < per_epoch},  // resumed mid-epoch: loss and accuracy cover the rest
        {"lr", sched.lr(info.step - 1)},
        {"ranks", ranks}};
    if (group) m["allreduce_wait_share"] = wait_s / std::max(train_s, 1e-9);
    // Log, best, then last: a stop anywhere in between resumes from the previous `last`, runs this
    // epoch again (bit for bit, so best is rewritten with the same bytes) and drops the log line.
    if (rank0) {
      metrics << m.dump() << "\n" << std::flush;
      QF_CHECK(metrics, metrics_path + ": cannot write: " + std::strerror(errno));
    }
    if (best) save(best_path(cfg));
    save(last_path(cfg));
    res.final_acc = ev.top1();
    res.best_acc = info.best_acc;
    if (epoch + 1 == epochs && !group) res.last_eval = std::move(ev);
  }
  res.finished = true;
  return res;
}

}  // namespace qforge::apps
