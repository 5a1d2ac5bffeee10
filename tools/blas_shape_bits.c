// Does OpenBLAS give an element of C = A*B the same bits whatever the shape of the call and the
// element's place in it? (Why probe runs every image through the network alone: issue 12.)
//   gcc -O2 tools/blas_shape_bits.c -o /tmp/blas_shape_bits -lopenblas
//   for t in SANDYBRIDGE HASWELL ZEN SKYLAKEX; do OPENBLAS_CORETYPE=$t /tmp/blas_shape_bits 24 144; done
// For weights M x K, computes columns [off, off + N) of B in one call and counts elements whose bits
// differ from the same elements of one 3264-column call. Prints only what differs.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc,char**argv){
  int M=atoi(argv[1]),K=atoi(argv[2]);
  int Ns[]={7,16,49,64,100,196,256,512,1568};
  int NN=3136+128;
  float*A=malloc(sizeof(float)*M*K),*B=malloc(sizeof(float)*K*NN),*C=malloc(sizeof(float)*M*NN),*R=malloc(sizeof(float)*M*NN);
  srand(1); for(int i=0;i<M*K;i++)A[i]=rand()/(float)RAND_MAX-.5f; for(int i=0;i<K*NN;i++)B[i]=rand()/(float)RAND_MAX-.5f;
  openblas_set_num_threads(1);
  cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,M,NN,K,1,A,K,B,NN,0,R,NN);
  for(int t=0;t<9;t++){int N=Ns[t]; int offs[]={0,17,64,100}; for(int q=0;q<4;q++){ int o=offs[q];
    cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,M,N,K,1,A,K,B+o,NN,0,C,N);
    int diff=0,cnt=0; for(int j=0;j<N;j++){int gj=o+j; for(int i=0;i<M;i++){cnt++; if(C[i*N+j]!=R[i*NN+gj])diff++;}}
    if (diff) printf("M=%d K=%d N=%d off=%d: %d/%d differ from N=%d\n",M,K,N,o,diff,cnt,NN);}}
}
