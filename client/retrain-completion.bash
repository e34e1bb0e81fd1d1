# Bash completion for the retrain CLI: commands, their flags, values of the
# flags that take a fixed set, paths, and job ids from `retrain list`.
#   source client/retrain-completion.bash        (or copy it to
#   /etc/bash_completion.d/retrain)
# The flag lists match `retrain COMMAND --help` (a test checks it).

_retrain_commands="build-dataset train eval verify-dataset logs metrics status watch cancel list workers"
_retrain_global_flags="--server --output --timeout_s --token_file --tls_ca_file --help"
_retrain_flags_build_dataset="--train_directory --validation_directory --output_directory
  --labels_file --train_shards --validation_shards --num_threads --no_background_class
  --jpeg_quality --max_pixels --seed --format --verify --request_id --validate_only --wait"
_retrain_flags_train="--data_dir --train_dir --model --batch_size --max_steps --num_epochs
  --image_size --input_queue_memory_factor --num_preprocess_threads --num_readers --num_gpus
  --num_replicas --num_workers --initial_learning_rate --num_epochs_per_decay
  --learning_rate_decay_factor --rmsprop_decay --momentum --rmsprop_epsilon --seed
  --checkpoint_every_steps --checkpoint_every_secs --fine_tune --skip_corrupt_records --sync_batch_norm
  --pretrained_model_checkpoint_path --precision --augmentation --decode --priority --request_id
  --validate_only --wait"
_retrain_flags_eval="--data_dir --checkpoint_dir --subset --priority --wait"
_retrain_flags_verify_dataset="--data_dir --priority --request_id --validate_only --wait"
_retrain_flags_logs="--follow"
_retrain_flags_metrics="--follow"
_retrain_flags_status=""
_retrain_flags_watch=""
_retrain_flags_cancel="--reason"
_retrain_flags_list="--limit"
_retrain_flags_workers=""

_retrain() {
  local cur prev command word flags
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  command=""
  for word in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case " $_retrain_commands " in *" $word "*) command="$word"; break ;; esac
  done
  case "$prev" in
    --output) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
    --model) COMPREPLY=($(compgen -W "inception_v3 resnet50 small linear" -- "$cur")); return ;;
    --precision) COMPREPLY=($(compgen -W "fp32 bf16" -- "$cur")); return ;;
    --augmentation) COMPREPLY=($(compgen -W "inception none" -- "$cur")); return ;;
    --decode) COMPREPLY=($(compgen -W "auto cpu gpu" -- "$cur")); return ;;
    --subset) COMPREPLY=($(compgen -W "validation train" -- "$cur")); return ;;
    --format) COMPREPLY=($(compgen -W "tfrecord webdataset" -- "$cur")); return ;;
    --verify) COMPREPLY=($(compgen -W "full structure" -- "$cur")); return ;;
    --*_directory|--*_dir|--labels_file|--token_file|--tls_ca_file|--pretrained_model_checkpoint_path)
      COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  if [ -z "$command" ]; then
    COMPREPLY=($(compgen -W "$_retrain_commands $_retrain_global_flags" -- "$cur"))
    return
  fi
  if [[ "$cur" == -* ]]; then
    local var="_retrain_flags_${command//-/_}"
    COMPREPLY=($(compgen -W "${!var} $_retrain_global_flags" -- "$cur"))
    return
  fi
  case "$command" in
    logs|metrics|status|watch|cancel)
      COMPREPLY=($(compgen -W "$(retrain list --limit 100 2>/dev/null | awk '{print $1}')" -- "$cur"))
      ;;
  esac
}
complete -F _retrain retrain
