# retrain-bench-train: training throughput of the LibTorch models (see
# bench/train_throughput.sh). Included from bench/CMakeLists.txt; builds only
# where the trainer's nn library exists (RETRAIN_BUILD_TRAINER=ON).
if(TARGET retrain_trainer_nn)
  add_executable(retrain-bench-train ${CMAKE_CURRENT_LIST_DIR}/train_throughput.cc)
  target_link_libraries(retrain-bench-train PRIVATE retrain_trainer_nn retrain_trainer_launcher
    retrain_base)
  retrain_warnings(retrain-bench-train)
  target_precompile_headers(retrain-bench-train REUSE_FROM retrain_trainer_nn)
endif()
