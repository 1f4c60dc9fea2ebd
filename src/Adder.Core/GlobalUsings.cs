// One lane per sequence: the CPU kernels run 16 sequences at once in a Vector512<float> (SPEC math per
// sequence is too narrow, d_model 4, to vectorise inside one sequence).
global using VF = System.Runtime.Intrinsics.Vector512<float>;
global using V = System.Runtime.Intrinsics.Vector512;
